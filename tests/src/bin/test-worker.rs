//! The worker binary of the process tests: `mq::run_worker()` over the slots below and the
//! `extra-slots` crate. Each handled message appends `n` to the file `$MQ_TEST_RECORD`.

use serde::{Deserialize, Serialize};

use extra_slots as _;
use mq_tests::worker_process::Work;

/// Linked into this worker, but its slot lives in another worker: never acked here.
#[derive(mq::Message, Serialize, Deserialize)]
#[message(queue = "work")]
struct HandledElsewhere {
    n: u64,
}

mod nested {
    mod deeper {
        use super::super::Work;

        /// Runs in a private module two levels down: the registry must still find it.
        #[mq::slot]
        async fn do_work(msg: Work) {
            if msg.panic {
                panic!("work item {} exploded", msg.n);
            }
            tokio::time::sleep(std::time::Duration::from_millis(msg.sleep_ms)).await;
            crate::record(msg.n);
        }
    }
}

/// Slots that never return (see `tests/tests/slot_faults.rs`): each records its number,
/// then blocks its thread for an hour (sleeping, so that it costs no CPU).
mod stuck {
    use mq_tests::worker_process::{
        Blocks, BlocksWithoutTimeout, NeverYields, NeverYieldsWithoutTimeout,
    };

    const AN_HOUR: std::time::Duration = std::time::Duration::from_secs(3600);

    #[mq::slot]
    fn blocks(msg: &Blocks) {
        crate::record(msg.n);
        std::thread::sleep(AN_HOUR);
    }

    #[mq::slot]
    fn blocks_without_timeout(msg: &BlocksWithoutTimeout) {
        crate::record(msg.n);
        std::thread::sleep(AN_HOUR);
    }

    #[mq::slot]
    async fn never_yields(msg: NeverYields) {
        crate::record(msg.n);
        std::thread::sleep(AN_HOUR);
    }

    #[mq::slot]
    async fn never_yields_without_timeout(msg: NeverYieldsWithoutTimeout) {
        crate::record(msg.n);
        std::thread::sleep(AN_HOUR);
    }
}

fn record(n: u64) {
    if let Some(path) = std::env::var_os("MQ_TEST_RECORD") {
        mq_tests::worker_process::record(path.as_ref(), n);
    }
}

// Four runtime threads whatever the machine: a slot that never yields holds one of them.
#[tokio::main(worker_threads = 4)]
async fn main() -> mq::Result<()> {
    mq::run_worker().await
}
