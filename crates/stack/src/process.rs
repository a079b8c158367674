//! Child processes that cannot outlive the stack.
//!
//! Every long-running server (postgres, PostgREST, workerd) is a
//! [`Supervised`] process: its output goes to a log file in the stack's
//! directory, it is stopped (polite signal, then SIGKILL) and reaped when
//! dropped, and the kernel kills it if our process dies without dropping it
//! (a panic with `panic = "abort"`, SIGKILL, a crashed test harness).
//! Children also get their own process group so a Ctrl-C in the terminal
//! reaches only us, and we stop them in order instead of all at once.

use std::{
    fs::{File, OpenOptions},
    future::Future,
    io::{self, Read as _, Seek as _, SeekFrom},
    os::unix::process::CommandExt as _,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{mpsc, OnceLock},
    thread,
    time::{Duration, Instant},
};

use anyhow::{bail, Context as _};
use nix::{
    sys::signal::{kill, Signal},
    unistd::Pid,
};

/// How long a child gets to exit after its stop signal before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// How many bytes of a log file an error message quotes.
const LOG_TAIL_BYTES: u64 = 4000;

/// A running server process, stopped and reaped on drop.
#[derive(Debug)]
pub(crate) struct Supervised {
    name: &'static str,
    child: Child,
    log: PathBuf,
    stop_signal: Signal,
    stopped: bool,
}

impl Supervised {
    /// Spawns `cmd` with stdout and stderr appended to `log` (a restarted
    /// server goes on in its predecessor's log).
    ///
    /// `stop_signal` is what asks this program to shut down cleanly; the
    /// kernel sends `death_signal` if we die first (see [`set_death_signal`]).
    ///
    /// The fork happens on one long-lived thread; see [`spawn_on_spawner`].
    pub(crate) fn spawn(
        name: &'static str,
        mut cmd: Command,
        log: &Path,
        stop_signal: Signal,
        death_signal: Signal,
    ) -> anyhow::Result<Self> {
        let out = OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("create {}", log.display()))?;
        let err = out.try_clone()?;
        cmd.stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0);
        set_death_signal(&mut cmd, death_signal);
        let program = cmd.get_program().to_owned();
        let child = spawn_on_spawner(cmd).with_context(|| format!("start {name} ({program:?})"))?;
        Ok(Self {
            name,
            child,
            log: log.to_owned(),
            stop_signal,
            stopped: false,
        })
    }

    /// The process id, for messages.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Fails, quoting the log, if the process has exited.
    pub(crate) fn ensure_running(&mut self) -> anyhow::Result<()> {
        match self.child.try_wait()? {
            None => Ok(()),
            Some(status) => {
                self.stopped = true;
                bail!(
                    "{} exited unexpectedly ({status}); end of {}:\n{}",
                    self.name,
                    self.log.display(),
                    log_tail(&self.log)
                )
            }
        }
    }

    /// Polls `probe` every 50 ms until it returns true, failing early if the
    /// process exits and, with the log's tail, after `timeout`.
    pub(crate) async fn wait_until<F, Fut>(
        &mut self,
        what: &str,
        timeout: Duration,
        mut probe: F,
    ) -> anyhow::Result<()>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = bool>,
    {
        let deadline = Instant::now() + timeout;
        loop {
            self.ensure_running()
                .with_context(|| format!("waiting for {what}"))?;
            if probe().await {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!(
                    "timed out after {timeout:?} waiting for {what}; end of {}:\n{}",
                    self.log.display(),
                    log_tail(&self.log)
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Asks the process to exit, then kills it if it has not within
    /// [`STOP_GRACE`], and reaps it. Blocking, because it runs from `Drop`.
    pub(crate) fn stop(&mut self) {
        if self.stopped {
            return;
        }
        self.stopped = true;
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        let pid = Pid::from_raw(self.child.id() as i32);
        if kill(pid, self.stop_signal).is_ok() {
            let deadline = Instant::now() + STOP_GRACE;
            while Instant::now() < deadline {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                thread::sleep(Duration::from_millis(20));
            }
        }
        // Errors here mean the process is already gone; nothing is left to do.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Supervised {
    /// Sends `signal` and waits (on tokio's timer, so other tasks run
    /// meanwhile) until the process has exited and is reaped; SIGKILL after
    /// `grace`. For faults injected while the rest of the stack serves.
    pub(crate) async fn signal_and_reap(&mut self, signal: Signal, grace: Duration) {
        if self.stopped {
            return;
        }
        self.stopped = true;
        let pid = Pid::from_raw(self.child.id() as i32);
        let deadline = Instant::now() + grace;
        if kill(pid, signal).is_ok() {
            while Instant::now() < deadline {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Supervised {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A request to the spawner thread: a command, and where to send the child.
type SpawnJob = (Command, mpsc::Sender<io::Result<Child>>);

/// Spawns `cmd` from one thread that lives as long as the process.
///
/// Linux sends PR_SET_PDEATHSIG when the *thread* that forked the child
/// exits, not the process. Test harnesses run each test on its own thread,
/// so a stack shared between tests (started by whichever test came first)
/// would lose its servers when that test finished; tokio's blocking pool
/// retires idle threads the same way. Forking from a thread that never exits
/// ties the children's lives to the process instead.
fn spawn_on_spawner(cmd: Command) -> io::Result<Child> {
    static SPAWNER: OnceLock<mpsc::Sender<SpawnJob>> = OnceLock::new();
    let spawner = SPAWNER.get_or_init(|| {
        let (jobs, queue) = mpsc::channel::<SpawnJob>();
        thread::Builder::new()
            .name("edge-stack-spawner".into())
            .spawn(move || {
                for (mut cmd, reply) in queue {
                    // The caller may have given up waiting; nothing to do then.
                    let _ = reply.send(cmd.spawn());
                }
            })
            .expect("start the edge-stack spawner thread");
        jobs
    });

    let (reply, answer) = mpsc::channel();
    spawner
        .send((cmd, reply))
        .map_err(|_| io::Error::other("the edge-stack spawner thread is gone"))?;
    answer
        .recv()
        .map_err(|_| io::Error::other("the edge-stack spawner thread is gone"))?
}

/// Makes the kernel send `signal` to the child when the spawning thread
/// (the spawner, so in effect our process) dies, so no server is left
/// running if we are killed without unwinding.
#[cfg(target_os = "linux")]
fn set_death_signal(cmd: &mut Command, signal: Signal) {
    let parent = nix::unistd::getpid();
    // SAFETY (why `unsafe` is allowed here, and only here): `pre_exec` is
    // unsafe because the closure runs in the forked child, where only
    // async-signal-safe calls are sound. It calls prctl(2) and getppid(2),
    // both async-signal-safe, and neither allocates or takes locks.
    #[allow(unsafe_code)]
    unsafe {
        cmd.pre_exec(move || {
            nix::sys::prctl::set_pdeathsig(signal)?;
            // If we died between fork and prctl, the signal will never come.
            if nix::unistd::getppid() != parent {
                // Built from an errno, which (unlike a message) does not allocate.
                return Err(nix::errno::Errno::ESRCH.into());
            }
            Ok(())
        });
    }
}

#[cfg(not(target_os = "linux"))]
fn set_death_signal(_cmd: &mut Command, _signal: Signal) {}

/// The last few kilobytes of a log file, for error messages.
pub(crate) fn log_tail(path: &Path) -> String {
    let read = || -> std::io::Result<String> {
        let mut file = File::open(path)?;
        let len = file.metadata()?.len();
        file.seek(SeekFrom::Start(len.saturating_sub(LOG_TAIL_BYTES)))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    };
    match read() {
        Ok(text) if text.trim().is_empty() => "(log is empty)".to_owned(),
        Ok(text) => text,
        Err(e) => format!("(cannot read log: {e})"),
    }
}
