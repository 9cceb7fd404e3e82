//! Starting a server process and waiting for the line that says it is ready.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command};
use std::sync::{Arc, Mutex};

/// Which of the child's piped outputs carries its start-up line.
pub enum Pipe {
    Stdout,
    Stderr,
}

/// Spawns `cmd` (with `pipe` piped) and reads that output line by line into
/// `log` until `ready` recognises a line; then keeps draining it into `log`
/// so the child never blocks on a full pipe. What it wrote if it exits first.
pub fn spawn_until<T>(
    mut cmd: Command,
    pipe: Pipe,
    log: &Arc<Mutex<Vec<String>>>,
    mut ready: impl FnMut(&str) -> Option<T>,
) -> Result<(Child, T), String> {
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {:?}: {e}", cmd.get_program()));
    let out: Box<dyn Read + Send> = match pipe {
        Pipe::Stdout => Box::new(child.stdout.take().expect("stdout piped")),
        Pipe::Stderr => Box::new(child.stderr.take().expect("stderr piped")),
    };
    let mut lines = BufReader::new(out).lines();
    let found = loop {
        let Some(Ok(line)) = lines.next() else {
            let _ = child.wait();
            return Err(log.lock().unwrap().join("\n"));
        };
        let found = ready(&line);
        log.lock().unwrap().push(line);
        if let Some(found) = found {
            break found;
        }
    };
    let sink = log.clone();
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            sink.lock().unwrap().push(line);
        }
    });
    Ok((child, found))
}
