//! The engine on its own thread. Requests reach it through a channel; each request's events
//! come back on its own channel. When a request's receiver is dropped (a client disconnected),
//! the request is cancelled and its state freed at once.

use std::collections::HashMap;
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::backend::Backend;
use crate::engine::{Engine, EngineStats, Event, Request, RequestId, SubmitError};

/// A request's event stream. Dropping it cancels the request.
pub struct EventStream {
    pub id: RequestId,
    rx: tokio::sync::mpsc::UnboundedReceiver<Event>,
}

impl EventStream {
    pub async fn recv(&mut self) -> Option<Event> {
        self.rx.recv().await
    }

    /// For synchronous callers (tests, the CLI).
    pub fn blocking_recv(&mut self) -> Option<Event> {
        self.rx.blocking_recv()
    }
}

enum Command {
    Submit { req: Request, events: tokio::sync::mpsc::UnboundedSender<Event>, reply: Sender<Result<RequestId, SubmitError>> },
    Cancel(RequestId),
    Shutdown,
}

/// What the engine thread publishes after every step (for /metrics and /health).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServiceStats {
    pub engine: EngineStats,
    pub steps: u64,
}

/// A handle to the engine thread; cheap to clone.
#[derive(Clone)]
pub struct EngineService {
    tx: Sender<Command>,
    stats: Arc<Mutex<ServiceStats>>,
    thread: Arc<Mutex<Option<JoinHandle<()>>>>,
    max_context: usize,
    vocab_size: usize,
}

impl EngineService {
    /// Move `engine` onto its own thread.
    pub fn spawn<B: Backend + 'static>(engine: Engine<B>) -> EngineService {
        let (tx, rx) = channel();
        let stats = Arc::new(Mutex::new(ServiceStats { engine: engine.stats(), steps: 0 }));
        let (max_context, vocab_size) = (engine.max_context(), engine.backend().config().vocab_size);
        let st = stats.clone();
        let thread = std::thread::Builder::new().name("dsv4-engine".into()).spawn(move || run(engine, rx, st)).expect("spawning the engine thread");
        EngineService { tx, stats, thread: Arc::new(Mutex::new(Some(thread))), max_context, vocab_size }
    }

    pub fn max_context(&self) -> usize {
        self.max_context
    }

    pub fn vocab_size(&self) -> usize {
        self.vocab_size
    }

    /// Queue a request; its events arrive on the returned stream.
    pub fn submit(&self, req: Request) -> Result<EventStream, SubmitError> {
        let (etx, erx) = tokio::sync::mpsc::unbounded_channel();
        let (rtx, rrx) = channel();
        self.tx.send(Command::Submit { req, events: etx, reply: rtx }).map_err(|_| SubmitError::ShuttingDown)?;
        let id = rrx.recv().map_err(|_| SubmitError::ShuttingDown)??;
        Ok(EventStream { id, rx: erx })
    }

    pub fn cancel(&self, id: RequestId) {
        let _ = self.tx.send(Command::Cancel(id));
    }

    pub fn stats(&self) -> ServiceStats {
        *self.stats.lock().unwrap()
    }

    /// Stop the engine thread (running requests are cancelled) and wait for it.
    pub fn shutdown(&self) {
        let _ = self.tx.send(Command::Shutdown);
        if let Some(t) = self.thread.lock().unwrap().take() {
            let _ = t.join();
        }
    }
}

fn run<B: Backend>(mut engine: Engine<B>, rx: Receiver<Command>, stats: Arc<Mutex<ServiceStats>>) {
    let mut streams: HashMap<RequestId, tokio::sync::mpsc::UnboundedSender<Event>> = HashMap::new();
    let mut steps = 0u64;
    loop {
        // Block for work when idle; otherwise just drain what has arrived.
        let first = if engine.has_work() {
            rx.try_recv().ok()
        } else {
            match rx.recv_timeout(Duration::from_millis(200)) {
                Ok(c) => Some(c),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => return,
            }
        };
        let mut shutdown = false;
        for cmd in first.into_iter().chain(std::iter::from_fn(|| rx.try_recv().ok())) {
            match cmd {
                Command::Submit { req, events, reply } => {
                    let r = engine.submit(req);
                    if let Ok(id) = r {
                        streams.insert(id, events);
                    }
                    let _ = reply.send(r);
                }
                Command::Cancel(id) => {
                    if let Some(ev) = engine.cancel(id) {
                        deliver(&mut streams, ev);
                    }
                }
                Command::Shutdown => shutdown = true,
            }
        }
        // Clients that went away: cancel now, before spending a step on them.
        let gone: Vec<RequestId> = streams.iter().filter(|(_, s)| s.is_closed()).map(|(id, _)| *id).collect();
        for id in gone {
            streams.remove(&id);
            engine.cancel(id);
        }
        if shutdown {
            for id in streams.keys().copied().collect::<Vec<_>>() {
                if let Some(ev) = engine.cancel(id) {
                    deliver(&mut streams, ev);
                }
            }
            *stats.lock().unwrap() = ServiceStats { engine: engine.stats(), steps };
            return;
        }
        if engine.has_work() {
            for ev in engine.step() {
                deliver(&mut streams, ev);
            }
            steps += 1;
        }
        *stats.lock().unwrap() = ServiceStats { engine: engine.stats(), steps };
    }
}

/// Send an event to its request's stream; a finished request's stream is closed. A failed send
/// means the client left: the next loop turn cancels it.
fn deliver(streams: &mut HashMap<RequestId, tokio::sync::mpsc::UnboundedSender<Event>>, ev: Event) {
    let id = match &ev {
        Event::Token { id, .. } | Event::Finished { id, .. } => *id,
    };
    let finished = matches!(ev, Event::Finished { .. });
    if let Some(tx) = streams.get(&id) {
        let _ = tx.send(ev);
    }
    if finished {
        streams.remove(&id);
    }
}
