//! The slot that "sends" the confirmation e-mail.

use crate::SendOrderConfirmation;

#[mq::slot]
async fn send_confirmation(msg: &SendOrderConfirmation, ctx: mq::Context) {
    println!(
        "mail: to {} — your order {} is confirmed (message {}, attempt {})",
        msg.to,
        msg.order_id,
        ctx.id(),
        ctx.attempt()
    );
}
