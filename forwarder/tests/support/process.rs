//! A system tool running in the background in a named namespace (a server,
//! a bulk client): waited for with a bounded timeout, killed when dropped,
//! so a failing test leaves no process behind.

use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::atomic::{AtomicU32, Ordering},
    time::{Duration, Instant},
};

static NEXT: AtomicU32 = AtomicU32::new(0);

pub struct Spawned {
    what: String,
    child: Option<Child>,
    stdout: PathBuf,
    stderr: PathBuf,
}

impl Spawned {
    /// `ip netns exec NS CMD ARGS` in the background (`ip` execs CMD: the
    /// child's pid is CMD's), its output kept in files.
    pub fn in_netns(ns: &str, cmd: &str, args: &[&str]) -> Self {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let base =
            std::env::temp_dir().join(format!("xdpfwd-test-{cmd}-{}-{n}", std::process::id()));
        let stdout = base.with_extension("out");
        let stderr = base.with_extension("err");
        let what = format!("{cmd} {} (in {ns})", args.join(" "));
        let child = Command::new("ip")
            .args(["netns", "exec", ns, cmd])
            .args(args)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&stdout).unwrap())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {what}: {e} (is {cmd} installed?)"));
        Self {
            what,
            child: Some(child),
            stdout,
            stderr,
        }
    }

    /// Waits up to `timeout` for a successful exit; returns stdout. Panics
    /// (after killing it) when it runs longer or fails.
    pub fn wait(mut self, timeout: Duration) -> String {
        let mut child = self.child.take().expect("waited once");
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "{} did not finish within {timeout:?} (killed); stdout: {}; stderr: {}",
                    self.what,
                    self.read(&self.stdout),
                    self.read(&self.stderr)
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let out = self.read(&self.stdout);
        assert!(
            status.success(),
            "{} failed ({status}): {out}{}",
            self.what,
            self.read(&self.stderr)
        );
        out
    }

    fn read(&self, path: &PathBuf) -> String {
        std::fs::read_to_string(path).unwrap_or_default()
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_file(&self.stdout);
        let _ = std::fs::remove_file(&self.stderr);
    }
}
