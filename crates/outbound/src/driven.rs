//! Inside workerd: how a request's Rust future waits on JavaScript promises
//! (a fetch, the request body, `crypto.subtle`) without wasm-bindgen-futures'
//! executor.
//!
//! Profiled in workerd (bench/results/2026-12-02-profiles.md), that executor
//! was about a tenth of every route that does I/O: per await it makes two
//! Rust closures for `then`, crosses into wasm when the promise settles,
//! queues a microtask to run the woken task and crosses in again to poll.
//! Here JavaScript does the waiting instead (js/driven.js): the future is
//! polled, and when it is pending on a promise ([`settle`]) that promise goes
//! to a plain `async` loop, which awaits it and hands the outcome back in one
//! crossing ([`Task::resume`]). A request is then one crossing per step, the
//! shape a sans-I/O core would give, without rewriting the handlers.
//!
//! A future pending on anything else (a timer, a wasm-bindgen `JsFuture`) is
//! handed to wasm-bindgen-futures as it is, and every [`settle`] in it then
//! falls back to a `JsFuture` over its promise, so nothing waits forever.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use js_sys::Promise;
use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen::JsValue;
use wasm_bindgen_futures::JsFuture;

thread_local! {
    /// Set while [`Task`] polls its future: a [`settle`] polled then hands
    /// its promise to the driver instead of waiting itself.
    static DRIVING: Cell<bool> = const { Cell::new(false) };
    static NEXT_ID: Cell<u32> = const { Cell::new(0) };
    /// Promises awaited during the current poll, for the task to collect.
    static WANTED: RefCell<Vec<(u32, Promise)>> = const { RefCell::new(Vec::new()) };
    /// Outcomes delivered by the driver, until their [`Settled`] takes them.
    /// Shared by the isolate's concurrent requests, told apart by id.
    static OUTCOMES: RefCell<Vec<(u32, Result<JsValue, JsValue>)>> = const { RefCell::new(Vec::new()) };
}

#[wasm_bindgen(module = "/js/driven.js")]
extern "C" {
    /// Awaits `promise`, then `task.resume(..)` until it answers with
    /// something that is not a promise; resolves to that.
    #[wasm_bindgen(js_name = drive)]
    fn drive_js(task: Task, promise: &Promise) -> Promise;
}

/// The promise's outcome: its value, or what it rejected with.
pub fn settle(promise: Promise) -> Settled {
    Settled(State::New(promise))
}

/// The future of [`settle`].
pub struct Settled(State);

enum State {
    New(Promise),
    /// Handed to the driver under this id; the promise is kept in case the
    /// task is handed to wasm-bindgen-futures instead.
    Driven(u32, Promise),
    Own(JsFuture),
    Taken,
}

impl Future for Settled {
    type Output = Result<JsValue, JsValue>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        loop {
            match std::mem::replace(&mut this.0, State::Taken) {
                State::New(promise) if DRIVING.get() => {
                    let id = NEXT_ID.get();
                    NEXT_ID.set(id.wrapping_add(1));
                    WANTED.with_borrow_mut(|wanted| wanted.push((id, promise.clone())));
                    this.0 = State::Driven(id, promise);
                    return Poll::Pending;
                }
                State::Driven(id, promise) => {
                    let outcome = OUTCOMES.with_borrow_mut(|outcomes| {
                        let at = outcomes.iter().position(|(at, _)| *at == id)?;
                        Some(outcomes.swap_remove(at).1)
                    });
                    match outcome {
                        Some(outcome) => return Poll::Ready(outcome),
                        None if DRIVING.get() => {
                            this.0 = State::Driven(id, promise);
                            return Poll::Pending;
                        }
                        // Handed to wasm-bindgen-futures: wait as it does.
                        None => this.0 = State::Own(JsFuture::from(promise)),
                    }
                }
                State::New(promise) => this.0 = State::Own(JsFuture::from(promise)),
                State::Own(mut future) => {
                    let poll = Pin::new(&mut future).poll(cx);
                    this.0 = State::Own(future);
                    return poll;
                }
                State::Taken => panic!("`Settled` polled after it completed"),
            }
        }
    }
}

impl Drop for Settled {
    /// An outcome delivered for a future dropped before it took it (a
    /// request cancelled between two steps) is not kept.
    fn drop(&mut self) {
        if let State::Driven(id, _) = self.0 {
            OUTCOMES.with_borrow_mut(|outcomes| outcomes.retain(|(at, _)| *at != id));
        }
    }
}

type Answer = Pin<Box<dyn Future<Output = JsValue>>>;

/// Runs `answer` to its value: at once when it needs no promise (no
/// `Promise` is made at all then), else a promise of it that js/driven.js
/// resolves.
pub fn drive(answer: impl Future<Output = JsValue> + 'static) -> JsValue {
    let mut task = Task {
        answer: Some(Box::pin(answer)),
        waiting: VecDeque::new(),
        current: None,
    };
    match task.step() {
        Step::Done(value) => value,
        Step::Wait(promise) => drive_js(task, &promise).into(),
    }
}

/// A request's future between two steps (owned by js/driven.js's loop).
#[wasm_bindgen(js_name = EdgeTask)]
pub struct Task {
    /// `None` once handed to wasm-bindgen-futures.
    answer: Option<Answer>,
    /// Promises the future waits on that the driver has not been given.
    waiting: VecDeque<(u32, Promise)>,
    /// The one the driver is awaiting.
    current: Option<u32>,
}

enum Step {
    Done(JsValue),
    Wait(Promise),
}

#[wasm_bindgen(js_class = EdgeTask)]
impl Task {
    /// The outcome of the promise last handed out; answers the next promise
    /// to await, or the future's value.
    pub fn resume(&mut self, fulfilled: bool, value: JsValue) -> JsValue {
        let Some(id) = self.current.take() else {
            // The promise was wasm-bindgen-futures' own: its value is the
            // answer.
            return value;
        };
        let outcome = if fulfilled { Ok(value) } else { Err(value) };
        OUTCOMES.with_borrow_mut(|outcomes| outcomes.push((id, outcome)));
        match self.step() {
            Step::Done(value) => value,
            Step::Wait(promise) => promise.into(),
        }
    }
}

impl Task {
    fn step(&mut self) -> Step {
        let Some(answer) = self.answer.as_mut() else {
            unreachable!("a task handed over is not stepped");
        };
        DRIVING.set(true);
        let poll = answer
            .as_mut()
            .poll(&mut Context::from_waker(Waker::noop()));
        DRIVING.set(false);
        self.waiting.extend(WANTED.take());
        match poll {
            Poll::Ready(value) => {
                self.answer = None;
                Step::Done(value)
            }
            Poll::Pending => match self.waiting.pop_front() {
                Some((id, promise)) => {
                    self.current = Some(id);
                    Step::Wait(promise)
                }
                // Pending on something that is not a `settle`: let
                // wasm-bindgen-futures poll it with a real waker.
                None => {
                    let answer = self.answer.take().expect("stepped above");
                    Step::Wait(wasm_bindgen_futures::future_to_promise(async move {
                        Ok(answer.await)
                    }))
                }
            },
        }
    }
}
