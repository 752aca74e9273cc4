//! `image pull`'s output, as `docker pull`'s: a header, one line per layer
//! (`Pulling fs layer`, `Downloading`, `Download complete`, `Pull complete`
//! or `Already exists`), then `Digest:` and `Status:` and the full name. On
//! a terminal the layer lines are redrawn in place with Docker's bar;
//! otherwise every change is one more line, without a bar.

use std::io::Write;

use shoal_proto::local::{
    ImagePullDone, ImagePullLayer, ImagePullResolved, image_pull_event::Event,
};

use super::view::{familiar, human_size};

/// Docker's progress bar width.
const BAR: u64 = 50;

/// The name as the user gave it, tag-less ones get `Using default tag`.
pub fn has_tag_or_digest(reference: &str) -> bool {
    let last = reference.rsplit('/').next().unwrap_or(reference);
    last.contains(':') || last.contains('@')
}

/// Where the pull output goes and what is on screen.
pub struct PullScreen<W: Write> {
    out: W,
    tty: bool,
    /// Layer short ids and their current text, in order of appearance.
    layers: Vec<(String, String)>,
}

impl<W: Write> PullScreen<W> {
    /// A screen on `out`; `tty` redraws in place.
    pub fn new(out: W, tty: bool) -> PullScreen<W> {
        PullScreen {
            out,
            tty,
            layers: Vec::new(),
        }
    }

    /// The writer, for tests.
    #[cfg(test)]
    pub fn into_inner(self) -> W {
        self.out
    }

    /// Shows one event of the pull.
    pub fn event(&mut self, event: &Event) -> std::io::Result<()> {
        match event {
            Event::Resolved(r) => self.resolved(r),
            Event::Layer(l) => self.layer(l),
            Event::Done(d) => self.done(d),
        }
    }

    fn resolved(&mut self, r: &ImagePullResolved) -> std::io::Result<()> {
        let name = familiar(&r.reference);
        let (repo, tag) = match name.split_once('@') {
            Some((repo, digest)) => (repo.to_string(), digest.to_string()),
            None => {
                let (repo, tag) = super::view::split_tag(&name);
                (repo.to_string(), tag.to_string())
            }
        };
        // `Pulling from` names the repository path, without its registry.
        let path = match repo.split_once('/') {
            Some((host, path)) if host.contains(['.', ':']) || host == "localhost" => path,
            _ => repo.as_str(),
        };
        writeln!(self.out, "{tag}: Pulling from {path}")
    }

    fn layer(&mut self, l: &ImagePullLayer) -> std::io::Result<()> {
        let id = l.digest.strip_prefix("sha256:").unwrap_or(&l.digest);
        let id: String = id.chars().take(12).collect();
        let downloading = if self.tty {
            format!("Downloading {}", bar(l.done, l.total))
        } else {
            format!(
                "Downloading  {}/{}",
                human_size(l.done, 4),
                human_size(l.total, 4)
            )
        };
        match (l.complete, l.cached) {
            (true, true) => self.show(&id, "Already exists"),
            (true, false) => self.show(&id, "Pull complete"),
            // The last bytes: shown, then the download is complete.
            (false, _) if l.total > 0 && l.done >= l.total => {
                if !self.tty {
                    self.show(&id, &downloading)?;
                }
                self.show(&id, "Download complete")
            }
            (false, _) => self.show(&id, &downloading),
        }
    }

    /// Sets a layer's line: a new line for a new layer (after `Pulling fs
    /// layer` off a terminal), else redrawn in place on a terminal or one
    /// more line off it.
    fn show(&mut self, id: &str, text: &str) -> std::io::Result<()> {
        match self.layers.iter().position(|(i, _)| i == id) {
            None => {
                if !self.tty && !matches!(text, "Already exists" | "Pull complete") {
                    writeln!(self.out, "{id}: Pulling fs layer")?;
                }
                writeln!(self.out, "{id}: {text}")?;
                self.layers.push((id.to_string(), text.to_string()));
            }
            Some(at) if self.tty => {
                // The cursor is below the last layer line: go up to this
                // one, rewrite it, come back down.
                let up = self.layers.len() - at;
                write!(self.out, "\x1b[{up}A\r\x1b[2K{id}: {text}\x1b[{up}B\r")?;
                self.layers[at].1 = text.to_string();
            }
            Some(at) => {
                writeln!(self.out, "{id}: {text}")?;
                self.layers[at].1 = text.to_string();
            }
        }
        self.out.flush()
    }

    fn done(&mut self, d: &ImagePullDone) -> std::io::Result<()> {
        if !d.digest.is_empty() {
            writeln!(self.out, "Digest: {}", d.digest)?;
        }
        let name = familiar(&d.reference);
        if d.up_to_date {
            writeln!(self.out, "Status: Image is up to date for {name}")?;
        } else {
            writeln!(self.out, "Status: Downloaded newer image for {name}")?;
        }
        writeln!(self.out, "{}", d.reference)?;
        self.out.flush()
    }
}

/// Docker's `[=====>     ]  1.049MB/2.206MB`.
pub fn bar(done: u64, total: u64) -> String {
    let numbers = format!("{:>8}/{}", human_size(done, 4), human_size(total, 4));
    if total == 0 {
        return numbers;
    }
    let filled = (done.saturating_mul(100) / total / 2).min(BAR) as usize;
    let room = BAR as usize - filled;
    format!("[{}>{}] {numbers}", "=".repeat(filled), " ".repeat(room))
}
