//! Progress of long one-shot commands (`backup`, `resend --all`, `migrate`, and the coming
//! `reconcile` and `import-original`): a bar with rate and ETA on a terminal (indicatif), and
//! plain periodic lines otherwise (logs, CI), both on stderr, whose stdout is the answer.

use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How often the plain form prints a line.
pub const LINE_EVERY: Duration = Duration::from_secs(2);

/// A task's progress: `total` units of work, `done` so far. Cheap to update often.
pub struct Progress {
    label: String,
    unit: Unit,
    total: u64,
    form: Form,
}

/// What the amounts count.
#[derive(Clone, Copy)]
enum Unit {
    /// Things, named (`payments`, `migrations`): amounts shown as whole numbers.
    Count(&'static str),
    /// Bytes: amounts shown as sizes ([`size`]).
    Bytes,
}

impl Unit {
    fn amount(self, n: u64) -> String {
        match self {
            Unit::Count(_) => n.to_string(),
            Unit::Bytes => size(n),
        }
    }

    /// Appended to a bare amount (`10/30 payments`); sizes carry their own unit.
    fn suffix(self) -> String {
        match self {
            Unit::Count(name) => format!(" {name}"),
            Unit::Bytes => String::new(),
        }
    }
}

/// A size for people: `512 bytes` below 1 KiB, else KiB, MiB or GiB (1024-based) with one
/// decimal (`144.0 KiB`, `1.5 MiB`). Display only.
pub fn size(bytes: u64) -> String {
    const KIB: u64 = 1024;
    let (div, unit) = match bytes {
        0..KIB => return format!("{bytes} bytes"),
        KIB..0x10_0000 => (KIB, "KiB"),
        0x10_0000..0x4000_0000 => (0x10_0000, "MiB"),
        _ => (0x4000_0000, "GiB"),
    };
    // Display only: a size rounded to a tenth, not an amount of money.
    format!("{:.1} {unit}", bytes as f64 / div as f64)
}

enum Form {
    Bar(indicatif::ProgressBar),
    Lines(Mutex<Lines>),
}

struct Lines {
    out: Box<dyn Write + Send>,
    start: Instant,
    last: Instant,
    every: Duration,
    done: u64,
}

impl Progress {
    /// Starts reporting `total` units (`unit`, e.g. "payments") of `label`'s work on stderr:
    /// a bar when stderr is a terminal, else a line every [`LINE_EVERY`].
    pub fn start(label: &str, total: u64, unit: &'static str) -> Progress {
        Progress::start_as(label, total, Unit::Count(unit))
    }

    /// [`Progress::start`] for a task measured in bytes (`total` of them): amounts are shown
    /// as sizes (`512 bytes`, `144.0 KiB`, `1.5 MiB`), so small files do not read as 0.
    pub fn bytes(label: &str, total: u64) -> Progress {
        Progress::start_as(label, total, Unit::Bytes)
    }

    fn start_as(label: &str, total: u64, unit: Unit) -> Progress {
        if std::io::stderr().is_terminal() {
            let bar = indicatif::ProgressBar::new(total);
            let template = match unit {
                Unit::Count(_) => "{msg} [{bar:30}] {human_pos}/{human_len} {per_sec} ETA {eta}",
                Unit::Bytes => {
                    "{msg} [{bar:30}] {binary_bytes}/{binary_total_bytes} \
                     {binary_bytes_per_sec} ETA {eta}"
                }
            };
            let style = indicatif::ProgressStyle::with_template(template)
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                .progress_chars("=> ");
            bar.set_style(style);
            bar.set_message(label.to_owned());
            Progress {
                label: label.to_owned(),
                unit,
                total,
                form: Form::Bar(bar),
            }
        } else {
            Progress::lines_as(label, total, unit, Box::new(std::io::stderr()), LINE_EVERY)
        }
    }

    /// The plain form, writing to `out` at most once per `every` (and always at the end).
    pub fn lines(
        label: &str,
        total: u64,
        unit: &'static str,
        out: Box<dyn Write + Send>,
        every: Duration,
    ) -> Progress {
        Progress::lines_as(label, total, Unit::Count(unit), out, every)
    }

    /// [`Progress::lines`] for a task measured in bytes ([`Progress::bytes`]).
    pub fn lines_bytes(
        label: &str,
        total: u64,
        out: Box<dyn Write + Send>,
        every: Duration,
    ) -> Progress {
        Progress::lines_as(label, total, Unit::Bytes, out, every)
    }

    fn lines_as(
        label: &str,
        total: u64,
        unit: Unit,
        out: Box<dyn Write + Send>,
        every: Duration,
    ) -> Progress {
        let now = Instant::now();
        Progress {
            label: label.to_owned(),
            unit,
            total,
            form: Form::Lines(Mutex::new(Lines {
                out,
                start: now,
                last: now,
                every,
                done: 0,
            })),
        }
    }

    /// Records that `done` units (cumulative, capped at the total) are finished.
    pub fn set(&self, done: u64) {
        let done = done.min(self.total);
        match &self.form {
            Form::Bar(bar) => bar.set_position(done),
            Form::Lines(lines) => {
                let Ok(mut l) = lines.lock() else { return };
                l.done = done;
                let now = Instant::now();
                if now.duration_since(l.last) >= l.every {
                    l.last = now;
                    let text = line_as(&self.label, done, self.total, self.unit, now - l.start);
                    let _ = writeln!(l.out, "{text}");
                }
            }
        }
    }

    /// Adds `n` finished units.
    pub fn inc(&self, n: u64) {
        match &self.form {
            Form::Bar(bar) => bar.inc(n),
            Form::Lines(lines) => {
                let done = lines.lock().map(|l| l.done).unwrap_or(0);
                self.set(done.saturating_add(n));
            }
        }
    }

    /// Ends the report with the total time; the work is complete, as much of it as was last
    /// recorded.
    pub fn finish(self) {
        let done = match &self.form {
            Form::Bar(bar) => bar.position(),
            Form::Lines(lines) => lines.lock().map(|l| l.done).unwrap_or(0),
        };
        self.finish_at(done);
    }

    /// Ends the report with `done`, the amount the task really did (the total may have been an
    /// estimate, and the last update may be older than the end), and the total time. Bytes
    /// are said exactly and as a size: `backup: done, 147456 bytes (144.0 KiB) in 0.2 s`.
    pub fn finish_at(self, done: u64) {
        let amount = match self.unit {
            Unit::Bytes if done >= 1024 => format!("{done} bytes ({})", size(done)),
            Unit::Bytes => size(done),
            Unit::Count(name) => format!("{done} {name}"),
        };
        match self.form {
            Form::Bar(bar) => {
                bar.set_length(bar.length().unwrap_or(0).max(done));
                bar.set_position(done);
                bar.finish_with_message(format!("{} done, {amount}", self.label));
            }
            Form::Lines(lines) => {
                let Ok(mut l) = lines.into_inner() else {
                    return;
                };
                let took = l.start.elapsed();
                let _ = writeln!(
                    l.out,
                    "{}: done, {amount} in {:.1} s",
                    self.label,
                    took.as_secs_f64()
                );
            }
        }
    }
}

/// One plain progress line: `backup: 1200/5000 pages (24%), 600 pages/s, ETA 6 s`. The rate
/// is the mean since the start; the ETA assumes it holds.
pub fn line(label: &str, done: u64, total: u64, unit: &'static str, elapsed: Duration) -> String {
    line_as(label, done, total, Unit::Count(unit), elapsed)
}

/// [`line`] in any unit: sizes for bytes (`backup: 50.0 MiB/200.0 MiB (25%), 25.0 MiB/s, ETA
/// 6 s`).
fn line_as(label: &str, done: u64, total: u64, unit: Unit, elapsed: Duration) -> String {
    let pct = (done.saturating_mul(100)).checked_div(total).unwrap_or(100);
    let secs = elapsed.as_secs_f64();
    let (d, t, suffix) = (unit.amount(done), unit.amount(total), unit.suffix());
    if done == 0 || secs <= 0.0 {
        return format!("{label}: {d}/{t}{suffix} ({pct}%)");
    }
    // Display only: the rate and the ETA are estimates, not amounts of anything.
    let rate = done as f64 / secs;
    let eta = total.saturating_sub(done) as f64 / rate;
    let rate = match unit {
        Unit::Count(name) => format!("{rate:.0} {name}/s"),
        Unit::Bytes => format!("{}/s", size(rate as u64)),
    };
    format!(
        "{label}: {d}/{t}{suffix} ({pct}%), {rate}, ETA {}",
        human(eta)
    )
}

fn human(secs: f64) -> String {
    let s = secs.round() as u64;
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min {} s", s / 60, s % 60),
        _ => format!("{} h {} min", s / 3600, (s % 3600) / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn a_line_has_count_share_rate_and_eta() {
        assert_eq!(
            line("backup", 1200, 5000, "pages", Duration::from_secs(2)),
            "backup: 1200/5000 pages (24%), 600 pages/s, ETA 6 s"
        );
        assert_eq!(
            line("resend", 10, 100_000, "payments", Duration::from_secs(1)),
            "resend: 10/100000 payments (0%), 10 payments/s, ETA 2 h 46 min"
        );
        assert_eq!(
            line("migrate", 0, 3, "migrations", Duration::ZERO),
            "migrate: 0/3 migrations (0%)"
        );
        assert_eq!(
            line("x", 0, 0, "rows", Duration::ZERO),
            "x: 0/0 rows (100%)"
        );
    }

    #[test]
    fn sizes_are_bytes_below_a_kib_and_binary_units_with_a_decimal_above() {
        assert_eq!(size(0), "0 bytes");
        assert_eq!(size(1023), "1023 bytes");
        assert_eq!(size(1024), "1.0 KiB");
        assert_eq!(size(147_456), "144.0 KiB");
        assert_eq!(size(1_572_864), "1.5 MiB");
        assert_eq!(size(3 << 30), "3.0 GiB");
        assert_eq!(
            line_as(
                "backup",
                52_428_800,
                209_715_200,
                Unit::Bytes,
                Duration::from_secs(2)
            ),
            "backup: 50.0 MiB/200.0 MiB (25%), 25.0 MiB/s, ETA 6 s"
        );
    }

    #[test]
    fn the_closing_line_says_what_was_really_done() {
        // the last update saw nothing yet, and the copy ended above the estimate
        let out = Shared::default();
        let p = Progress::lines_bytes("backup", 100_000, Box::new(out.clone()), Duration::ZERO);
        p.set(0);
        p.finish_at(147_456);
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        let last = text.lines().last().unwrap();
        assert!(
            last.starts_with("backup: done, 147456 bytes (144.0 KiB) in "),
            "{text}"
        );
        let out = Shared::default();
        let p = Progress::lines_bytes("backup", 600, Box::new(out.clone()), Duration::ZERO);
        p.finish_at(512);
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        assert!(text.starts_with("backup: done, 512 bytes in "), "{text}");
    }

    /// A `Write` the test can read back.
    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);
    impl Write for Shared {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn off_a_terminal_it_prints_plain_lines_and_a_closing_one() {
        let out = Shared::default();
        let p = Progress::lines(
            "resend",
            30,
            "payments",
            Box::new(out.clone()),
            Duration::ZERO,
        );
        p.inc(10);
        p.inc(10);
        p.set(99); // capped at the total
        p.finish();
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4, "{text}");
        assert!(
            lines[0].starts_with("resend: 10/30 payments (33%)"),
            "{text}"
        );
        assert!(
            lines[1].starts_with("resend: 20/30 payments (66%)"),
            "{text}"
        );
        assert!(
            lines[2].starts_with("resend: 30/30 payments (100%)"),
            "{text}"
        );
        assert!(
            lines[3].starts_with("resend: done, 30 payments in "),
            "{text}"
        );
        assert!(!text.contains('\u{1b}'), "no terminal escapes: {text}");
    }

    #[test]
    fn lines_are_spaced_by_the_interval() {
        let out = Shared::default();
        let p = Progress::lines(
            "backup",
            100,
            "MiB",
            Box::new(out.clone()),
            Duration::from_secs(3600),
        );
        for i in 0..100 {
            p.set(i);
        }
        p.finish();
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        assert_eq!(text.lines().count(), 1, "only the closing line: {text}");
    }
}
