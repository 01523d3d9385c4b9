pub mod beanstalkd;
