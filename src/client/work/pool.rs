//! Threads for the worker's per-task jobs (each task's output reader and the waiter for
//! its shell), kept and reused instead of created for every task.
//!
//! A thread costs its creation and its end (a stack mapped and unmapped, its first pages
//! faulted in, a clone and an exit) every time: with two per task, that was the largest part
//! of the worker's own CPU time per task running `true` (BENCHMARKS.md). A thread of the
//! pool that finishes a job waits for the next one; a new thread is made only when every
//! kept thread is busy, so their number stays at the most jobs ever run at once (two per
//! task of `-j`, and a few more).

use std::sync::Mutex;
use std::sync::mpsc::{self, Sender};

type Job = Box<dyn FnOnce() + Send + 'static>;

/// Idle threads, each waiting on its own channel for a job.
static IDLE: Mutex<Vec<Sender<Job>>> = Mutex::new(Vec::new());

/// The stack of a pool thread: jobs read pipes and wait for processes, with a 64 KiB
/// buffer on the heap; far less than the default 2 MiB is needed.
const STACK_BYTES: usize = 256 * 1024;

/// Runs `job` on an idle thread of the pool, or on a new one.
pub fn run(job: impl FnOnce() + Send + 'static) {
    let mut job: Job = Box::new(job);
    while let Some(idle) = take_idle() {
        match idle.send(job) {
            Ok(()) => return,
            // That thread is gone (it cannot be, but then another one takes the job).
            Err(mpsc::SendError(back)) => job = back,
        }
    }
    let started = std::thread::Builder::new()
        .name("vapora-task".into())
        .stack_size(STACK_BYTES)
        .spawn(move || serve(job));
    if let Err(e) = started {
        // No thread can be made (a limit reached): the job cannot run, and its task's
        // reader would wait for it forever. Nothing sensible is left to do.
        panic!("cannot start a thread for a task: {e}");
    }
}

fn take_idle() -> Option<Sender<Job>> {
    IDLE.lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .pop()
}

/// A pool thread: runs its first job, then each job it is given while idle.
fn serve(first: Job) {
    let (sender, jobs) = mpsc::channel::<Job>();
    let mut job = first;
    loop {
        job();
        IDLE.lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push(sender.clone());
        match jobs.recv() {
            Ok(next) => job = next,
            Err(_) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threads_are_reused_once_idle() {
        let (done, finished) = mpsc::channel();
        let first_thread = {
            let done = done.clone();
            run(move || done.send(std::thread::current().id()).unwrap());
            finished.recv().unwrap()
        };
        // Give the thread the moment it needs to park itself as idle.
        for _ in 0..1000 {
            if !IDLE.lock().unwrap().is_empty() {
                break;
            }
            std::thread::yield_now();
        }
        run(move || done.send(std::thread::current().id()).unwrap());
        assert_eq!(finished.recv().unwrap(), first_thread);
    }
}
