//! Every command of beanstalkd 1.12 and its replies, through mq's pipelined connection,
//! against a real server.

use std::sync::Arc;

use mq::transport::beanstalk::connection::Connection;
use mq::transport::beanstalk::proto::{
    parse_yaml_list, parse_yaml_map, Command, Decoder, Response,
};
use mq_tests::beanstalkd::Beanstalkd;

async fn connect(server: &Beanstalkd) -> Connection {
    let address = server.address().parse().unwrap();
    Connection::connect(&server.address(), &[address], Decoder::default())
        .await
        .unwrap()
}

fn put(body: &[u8]) -> Command<'_> {
    Command::Put {
        priority: 10,
        delay: 0,
        ttr: 60,
        body,
    }
}

#[tokio::test]
async fn every_command_and_reply() {
    let server = Beanstalkd::start_with(&["-z", "100"]);
    let c = connect(&server).await;
    let call = |command| c.call(command);

    // use, list-tube-used, put, peek-*, stats-job
    assert_eq!(
        call(Command::Use("t1")).await.unwrap(),
        Response::Using("t1".into())
    );
    assert_eq!(
        call(Command::ListTubeUsed).await.unwrap(),
        Response::Using("t1".into())
    );
    let Response::Inserted(a) = call(put(b"alpha")).await.unwrap() else {
        panic!()
    };
    let Response::Inserted(b) = call(Command::Put {
        priority: 5,
        delay: 100,
        ttr: 60,
        body: b"beta",
    })
    .await
    .unwrap() else {
        panic!()
    };
    assert_eq!(call(put(&[b'x'; 101])).await.unwrap(), Response::JobTooBig);
    assert_eq!(
        call(Command::Peek(a)).await.unwrap(),
        Response::Found {
            id: a,
            body: "alpha".into()
        }
    );
    assert_eq!(
        call(Command::PeekReady).await.unwrap(),
        Response::Found {
            id: a,
            body: "alpha".into()
        }
    );
    assert_eq!(
        call(Command::PeekDelayed).await.unwrap(),
        Response::Found {
            id: b,
            body: "beta".into()
        }
    );
    assert_eq!(call(Command::PeekBuried).await.unwrap(), Response::NotFound);
    assert_eq!(
        call(Command::Peek(999_999)).await.unwrap(),
        Response::NotFound
    );
    let Response::Ok(yaml) = call(Command::StatsJob(b)).await.unwrap() else {
        panic!()
    };
    let stats = parse_yaml_map(&yaml).unwrap();
    assert_eq!(stats["tube"], "t1");
    assert_eq!(stats["state"], "delayed");
    assert_eq!(stats["pri"], "5");
    assert_eq!(
        call(Command::StatsJob(999_999)).await.unwrap(),
        Response::NotFound
    );

    // watch, ignore, list-tubes-watched, reserve*, touch, release, bury, kick*, delete
    assert_eq!(
        call(Command::Watch("t1")).await.unwrap(),
        Response::Watching(2)
    );
    assert_eq!(
        call(Command::Ignore("default")).await.unwrap(),
        Response::Watching(1)
    );
    assert_eq!(
        call(Command::Ignore("t1")).await.unwrap(),
        Response::NotIgnored
    );
    let Response::Ok(yaml) = call(Command::ListTubesWatched).await.unwrap() else {
        panic!()
    };
    assert_eq!(parse_yaml_list(&yaml).unwrap(), vec!["t1"]);
    assert_eq!(
        call(Command::Reserve).await.unwrap(),
        Response::Reserved {
            id: a,
            body: "alpha".into()
        }
    );
    assert_eq!(
        call(Command::ReserveWithTimeout(0)).await.unwrap(),
        Response::TimedOut
    );
    assert_eq!(call(Command::Touch(a)).await.unwrap(), Response::Touched);
    assert_eq!(call(Command::Touch(b)).await.unwrap(), Response::NotFound);
    assert_eq!(
        call(Command::Release {
            id: a,
            priority: 7,
            delay: 0
        })
        .await
        .unwrap(),
        Response::Released
    );
    assert_eq!(
        call(Command::Release {
            id: a,
            priority: 7,
            delay: 0
        })
        .await
        .unwrap(),
        Response::NotFound
    );
    assert_eq!(
        call(Command::ReserveJob(a)).await.unwrap(),
        Response::Reserved {
            id: a,
            body: "alpha".into()
        }
    );
    assert_eq!(
        call(Command::ReserveJob(999_999)).await.unwrap(),
        Response::NotFound
    );
    assert_eq!(
        call(Command::Bury { id: a, priority: 8 }).await.unwrap(),
        Response::Buried
    );
    assert_eq!(
        call(Command::Bury { id: a, priority: 8 }).await.unwrap(),
        Response::NotFound
    );
    assert_eq!(
        call(Command::PeekBuried).await.unwrap(),
        Response::Found {
            id: a,
            body: "alpha".into()
        }
    );
    assert_eq!(
        call(Command::Kick(10)).await.unwrap(),
        Response::KickedCount(1)
    );
    assert_eq!(
        call(Command::Kick(10)).await.unwrap(),
        Response::KickedCount(1),
        "then the delayed one"
    );
    assert_eq!(
        call(Command::KickJob(a)).await.unwrap(),
        Response::NotFound,
        "ready: not kickable"
    );
    assert_eq!(
        call(Command::Reserve).await.unwrap(),
        Response::Reserved {
            id: b,
            body: "beta".into()
        }
    );
    assert_eq!(
        call(Command::Bury { id: b, priority: 1 }).await.unwrap(),
        Response::Buried
    );
    assert_eq!(call(Command::KickJob(b)).await.unwrap(), Response::Kicked);
    assert_eq!(call(Command::Delete(a)).await.unwrap(), Response::Deleted);
    assert_eq!(call(Command::Delete(a)).await.unwrap(), Response::NotFound);

    // stats, stats-tube, list-tubes, pause-tube
    let Response::Ok(yaml) = call(Command::Stats).await.unwrap() else {
        panic!()
    };
    let stats = parse_yaml_map(&yaml).unwrap();
    assert_eq!(stats["max-job-size"], "100");
    assert_eq!(stats["version"], "1.12");
    let Response::Ok(yaml) = call(Command::StatsTube("t1")).await.unwrap() else {
        panic!()
    };
    assert_eq!(parse_yaml_map(&yaml).unwrap()["current-jobs-ready"], "1");
    assert_eq!(
        call(Command::StatsTube("nope")).await.unwrap(),
        Response::NotFound
    );
    let Response::Ok(yaml) = call(Command::ListTubes).await.unwrap() else {
        panic!()
    };
    assert_eq!(parse_yaml_list(&yaml).unwrap(), vec!["default", "t1"]);
    assert_eq!(
        call(Command::PauseTube {
            tube: "t1",
            delay: 1
        })
        .await
        .unwrap(),
        Response::Paused
    );
    assert_eq!(
        call(Command::PauseTube {
            tube: "nope",
            delay: 1
        })
        .await
        .unwrap(),
        Response::NotFound
    );
    // Paused: nothing for a moment, then the job.
    assert_eq!(
        call(Command::ReserveWithTimeout(0)).await.unwrap(),
        Response::TimedOut
    );
    assert_eq!(
        call(Command::ReserveWithTimeout(3)).await.unwrap(),
        Response::Reserved {
            id: b,
            body: "beta".into()
        }
    );

    // quit: no reply, and the connection is closed by the server.
    assert_eq!(c.send(&[Command::Quit]).await.unwrap(), vec![]);
    let error = c.call(Command::Stats).await.unwrap_err();
    assert!(matches!(error, mq::Error::Unreachable { .. }), "{error}");
}

#[tokio::test]
async fn deadline_soon_and_server_errors_are_values() {
    let server = Beanstalkd::start();
    let c = connect(&server).await;
    let Response::Inserted(id) = c
        .call(Command::Put {
            priority: 0,
            delay: 0,
            ttr: 1,
            body: b"x",
        })
        .await
        .unwrap()
    else {
        panic!()
    };
    assert!(matches!(
        c.call(Command::Reserve).await.unwrap(),
        Response::Reserved { .. }
    ));
    // TTR 1 s: the safety margin of one second makes the deadline "soon" at once.
    assert_eq!(
        c.call(Command::ReserveWithTimeout(2)).await.unwrap(),
        Response::DeadlineSoon
    );
    assert_eq!(
        c.call(Command::Delete(id)).await.unwrap(),
        Response::Deleted
    );

    // A raw connection writes what mq's encoder never would.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut raw = tokio::net::TcpStream::connect(server.address())
        .await
        .unwrap();
    raw.write_all(b"frobnicate\r\nput 0 0 1 x\r\nput 0 0 1 1\r\nab\r\n")
        .await
        .unwrap();
    let mut buf = bytes::BytesMut::new();
    let mut decoder = Decoder::default();
    let mut replies = Vec::new();
    while replies.len() < 3 {
        while let Some(reply) = decoder.decode(&mut buf).unwrap() {
            replies.push(reply);
        }
        if replies.len() < 3 && raw.read_buf(&mut buf).await.unwrap() == 0 {
            break;
        }
    }
    assert_eq!(
        replies,
        vec![
            Response::UnknownCommand,
            Response::BadFormat,
            Response::ExpectedCrlf
        ]
    );
}

#[tokio::test]
async fn many_tasks_pipeline_on_one_connection() {
    let server = Beanstalkd::start();
    let c = Arc::new(connect(&server).await);
    let mut tasks = Vec::new();
    for task in 0..20 {
        let c = c.clone();
        tasks.push(tokio::spawn(async move {
            let tube = format!("tube{}", task % 3);
            let mut ids = Vec::new();
            for i in 0..50 {
                let body = format!("{task}-{i}");
                let replies = c.send_using(&tube, &[put(body.as_bytes())]).await.unwrap();
                let [Response::Inserted(id)] = replies[..] else {
                    panic!("{replies:?}")
                };
                ids.push((id, tube.clone(), body));
            }
            ids
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.unwrap());
    }
    assert_eq!(all.len(), 1000);
    // Each job landed in the tube its task used, with its body.
    let checks: Vec<Command<'_>> = all
        .iter()
        .flat_map(|(id, _, _)| [Command::StatsJob(*id), Command::Peek(*id)])
        .collect();
    let replies = c.send(&checks).await.unwrap();
    for ((id, tube, body), pair) in all.iter().zip(replies.chunks(2)) {
        let Response::Ok(yaml) = &pair[0] else {
            panic!()
        };
        assert_eq!(&parse_yaml_map(yaml).unwrap()["tube"], tube);
        assert_eq!(
            pair[1],
            Response::Found {
                id: *id,
                body: body.clone().into()
            }
        );
    }
}
