//! Group commit: many callers' items, one transaction. A caller hands its item to a `Batcher`
//! and awaits its own answer; one task per batcher takes whatever is waiting (up to `max`) and
//! runs the batch function on it, `in_flight` batches at most at once. Nothing waits on purpose:
//! a lone item goes at once, and items that arrive while a batch runs make up the next one. A
//! batch of one and a batch of many go through the same function.
//!
//! The batch runs in a task of its own, so a caller that goes away (a client hanging up) neither
//! cancels it nor loses the others' answers.

use std::future::Future;
use std::sync::Arc;

use tokio::sync::{Semaphore, mpsc, oneshot};

/// The batch task is gone (the process is stopping) or the batch failed without answering
/// (a panic): the item may or may not have been done.
#[derive(Debug, thiserror::Error)]
#[error("the batch this was part of did not answer")]
pub struct NoAnswer;

type Waiting<I, O> = (I, oneshot::Sender<O>);

pub struct Batcher<I, O> {
    items: mpsc::UnboundedSender<Waiting<I, O>>,
}

impl<I, O> Clone for Batcher<I, O> {
    fn clone(&self) -> Self {
        Batcher { items: self.items.clone() }
    }
}

impl<I: Send + 'static, O: Send + 'static> Batcher<I, O> {
    /// Start the batch task. `run` gets the items in the order they came and answers each, in
    /// the same order (a missing answer is `NoAnswer` for its caller). Needs a Tokio runtime;
    /// the task ends when the last `Batcher` handle is dropped.
    pub fn start<F, Fut>(max: usize, in_flight: usize, run: F) -> Batcher<I, O>
    where
        F: Fn(Vec<I>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Vec<O>> + Send + 'static,
    {
        let (items, mut waiting) = mpsc::unbounded_channel::<Waiting<I, O>>();
        let (max, turns) = (max.max(1), Arc::new(Semaphore::new(in_flight.max(1))));
        tokio::spawn(async move {
            loop {
                let Ok(turn) = turns.clone().acquire_owned().await else { return };
                let Some(first) = waiting.recv().await else { return };
                let mut batch = vec![first];
                while batch.len() < max {
                    match waiting.try_recv() {
                        Ok(item) => batch.push(item),
                        Err(_) => break,
                    }
                }
                let (inputs, answers): (Vec<I>, Vec<oneshot::Sender<O>>) = batch.into_iter().unzip();
                let done = run(inputs);
                tokio::spawn(async move {
                    for (answer, out) in answers.into_iter().zip(done.await) {
                        let _ = answer.send(out);
                    }
                    drop(turn);
                });
            }
        });
        Batcher { items }
    }

    /// Hand `item` over and wait for its answer.
    pub async fn call(&self, item: I) -> Result<O, NoAnswer> {
        let (answer, out) = oneshot::channel();
        self.items.send((item, answer)).map_err(|_| NoAnswer)?;
        out.await.map_err(|_| NoAnswer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use std::time::Duration;

    #[tokio::test]
    async fn a_lone_item_goes_at_once_and_waiting_ones_share_the_next_batch() {
        let sizes = Arc::new(Mutex::new(Vec::new()));
        let seen = sizes.clone();
        let batcher = Batcher::start(8, 1, move |items: Vec<u32>| {
            seen.lock().unwrap().push(items.len());
            async move {
                tokio::time::sleep(Duration::from_millis(50)).await;
                items.into_iter().map(|i| i * 10).collect::<Vec<_>>()
            }
        });
        assert_eq!(batcher.call(1).await.unwrap(), 10);
        // One batch runs; the twenty that come meanwhile go in batches of at most eight.
        let first = tokio::spawn({
            let b = batcher.clone();
            async move { b.call(2).await.unwrap() }
        });
        tokio::time::sleep(Duration::from_millis(10)).await;
        let rest: Vec<_> = (3..23)
            .map(|i| {
                let b = batcher.clone();
                tokio::spawn(async move { (i, b.call(i).await.unwrap()) })
            })
            .collect();
        assert_eq!(first.await.unwrap(), 20);
        for task in rest {
            let (i, out) = task.await.unwrap();
            assert_eq!(out, i * 10, "each caller gets its own answer");
        }
        let sizes = sizes.lock().unwrap().clone();
        assert_eq!(sizes[..2], [1, 1], "{sizes:?}");
        assert_eq!(sizes[2..], [8, 8, 4], "{sizes:?}");
    }

    #[tokio::test]
    async fn a_batch_that_answers_too_few_leaves_the_rest_without_an_answer() {
        let batcher = Batcher::start(4, 1, |items: Vec<u32>| async move { items.into_iter().take(1).collect() });
        let (a, b) = tokio::join!(batcher.call(1), batcher.call(2));
        assert_eq!(a.ok().into_iter().chain(b.ok()).count(), 1);
    }

    #[tokio::test]
    async fn batches_run_side_by_side_up_to_the_limit() {
        let running = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let most = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (r, m) = (running.clone(), most.clone());
        let batcher = Batcher::start(1, 2, move |items: Vec<u32>| {
            let (r, m) = (r.clone(), m.clone());
            async move {
                use std::sync::atomic::Ordering::SeqCst;
                m.fetch_max(r.fetch_add(1, SeqCst) + 1, SeqCst);
                tokio::time::sleep(Duration::from_millis(20)).await;
                r.fetch_sub(1, SeqCst);
                items
            }
        });
        let calls: Vec<_> = (0..6).map(|i| batcher.call(i)).collect();
        let outs = futures::future::join_all(calls).await;
        assert_eq!(outs.into_iter().map(Result::unwrap).collect::<Vec<_>>(), [0, 1, 2, 3, 4, 5]);
        assert_eq!(most.load(std::sync::atomic::Ordering::SeqCst), 2);
    }
}
