//! `accord report FILE`: streams a file of measurements to
//! `StreamMeasurements` in batches, several in flight, and records after
//! each acknowledged batch how far the file is reported (see `resume`), so
//! that a second run after an interruption starts where the first one
//! stopped. The file is read twice, never held: once to check every line
//! before anything is sent, once to send.

use std::collections::VecDeque;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::Args;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Code;

use super::Failure;
use super::connection::{Connection, ConnectionArgs};
use super::measurement_file::{self, Format, Lines};
use super::resume::{self, State};
use crate::proto::v1 as pb;
use pb::measurement_service_client::MeasurementServiceClient;

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// A CSV file with a header row, or JSON lines (.jsonl, .ndjson).
    pub file: PathBuf,
    /// The file's format [default: from its extension].
    #[arg(long, value_enum)]
    pub format: Option<Format>,
    /// Measurements per batch.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub batch_size: u32,
    /// Where to record progress [default: FILE.accord-report].
    #[arg(long, value_name = "FILE")]
    pub state: Option<PathBuf>,
    /// Report the file from its start, whatever the state file says.
    #[arg(long)]
    pub restart: bool,
    /// Print no progress line, only rejections and the summary.
    #[arg(long)]
    pub no_progress: bool,
    #[command(flatten)]
    pub connection: ConnectionArgs,
}

/// Batches sent and not yet answered, at most.
const IN_FLIGHT: usize = 4;
/// Reopening a stream that failed with UNAVAILABLE: how often, and the
/// first wait (doubled each time, at most `MAX_BACKOFF`).
const RETRIES: u32 = 5;
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Consecutive measurements of the file, sent as one message.
struct Batch {
    sequence: i64,
    measurements: Vec<pb::Measurement>,
    /// The line of each measurement.
    lines: Vec<usize>,
}

pub async fn run(args: ReportArgs) -> Result<(), Failure> {
    let format = match args.format.or_else(|| Format::of(&args.file)) {
        Some(format) => format,
        None => {
            return Err(Failure::Usage(format!(
                "error: cannot tell the format of {} from its extension (.csv, .jsonl, \
                 .ndjson): pass --format csv or --format jsonl",
                args.file.display()
            )));
        }
    };
    let connection = Connection::open(&args.connection)?;
    let tenant = connection.tenant()?;
    let scan = measurement_file::scan(&args.file, format, &tenant)?;

    let state_path = args
        .state
        .clone()
        .unwrap_or_else(|| resume::default_path(&args.file));
    let fresh = State::new(&scan.fingerprint, &connection.server, &tenant);
    let earlier = if args.restart {
        None
    } else {
        State::load(&state_path)?
    };
    let state = match earlier {
        Some(state) => {
            state
                .check(&scan.fingerprint, &connection.server, &tenant)
                .map_err(|why| {
                    Failure::Usage(format!(
                        "error: the state file {} does not fit {}: {why}; pass --restart to \
                         report the file from its start (what the server already holds \
                         counts as duplicates)",
                        state_path.display(),
                        args.file.display()
                    ))
                })?;
            println!(
                "resuming after line {}: {} of {} measurements reported before",
                state.acknowledged.line, state.acknowledged.measurements, scan.measurements
            );
            state
        }
        None => fresh,
    };

    let mut report = Report {
        file: args.file.clone(),
        state_path,
        progress: Progress::new(
            !args.no_progress && std::io::stderr().is_terminal(),
            scan.measurements,
            state.acknowledged.measurements,
        ),
        state,
    };
    let skip = report.state.acknowledged.measurements;
    if skip < scan.measurements {
        let batches = read_batches(&args.file, format, &tenant, skip, args.batch_size as usize)?;
        report.stream(&connection, &tenant, batches).await?;
    }
    report.progress.clear();
    State::remove(&report.state_path)?;

    let done = &report.state.acknowledged;
    println!(
        "reported {} measurements: {} accepted, {} duplicates, {} rejected",
        done.measurements, done.accepted, done.duplicates, done.rejected
    );
    if done.rejected > 0 {
        return Err(Failure::Server(format!(
            "error: the server rejected {} of {} measurements (listed above)",
            done.rejected, done.measurements
        )));
    }
    Ok(())
}

/// Reads the file on a thread of its own, `skip`ping its first
/// measurements, and hands on batches of `size`, a few ahead of the
/// stream.
fn read_batches(
    file: &Path,
    format: Format,
    tenant: &str,
    skip: u64,
    size: usize,
) -> Result<mpsc::Receiver<Result<Batch, Failure>>, Failure> {
    let input = measurement_file::open(file)?;
    let mut lines = Lines::new(file, format, tenant, input)?;
    let (tx, rx) = mpsc::channel(IN_FLIGHT);
    tokio::task::spawn_blocking(move || {
        let mut sequence = 0;
        let mut batch = Batch {
            sequence,
            measurements: Vec::with_capacity(size),
            lines: Vec::with_capacity(size),
        };
        for line in lines.by_ref().skip(skip as usize) {
            let line = match line {
                Ok(line) => line,
                // The file was checked whole before: it changed since.
                Err(e) => {
                    let _ = tx.blocking_send(Err(Failure::Input(format!(
                        "error: {} (the file changed while it was reported)",
                        e.message
                    ))));
                    return;
                }
            };
            batch.measurements.push(line.measurement);
            batch.lines.push(line.number);
            if batch.measurements.len() == size {
                sequence += 1;
                let next = Batch {
                    sequence,
                    measurements: Vec::with_capacity(size),
                    lines: Vec::with_capacity(size),
                };
                if tx
                    .blocking_send(Ok(std::mem::replace(&mut batch, next)))
                    .is_err()
                {
                    return;
                }
            }
        }
        if !batch.measurements.is_empty() {
            let _ = tx.blocking_send(Ok(batch));
        }
    });
    Ok(rx)
}

/// One run: the file, what is acknowledged so far and where that is kept.
struct Report {
    file: PathBuf,
    state_path: PathBuf,
    state: State,
    progress: Progress,
}

impl Report {
    /// Sends every batch and takes every answer, reopening the stream when
    /// it fails with UNAVAILABLE (a server restarting, a lost connection)
    /// and sending again what was not answered: those measurements are
    /// stored once whatever happens, since their ids say who they are.
    async fn stream(
        &mut self,
        connection: &Connection,
        tenant: &str,
        mut batches: mpsc::Receiver<Result<Batch, Failure>>,
    ) -> Result<(), Failure> {
        let mut unanswered: VecDeque<Batch> = VecDeque::new();
        let mut read_all = false;
        let mut retries = 0;
        loop {
            let (tx, rx) = mpsc::channel(IN_FLIGHT);
            for batch in &unanswered {
                tx.send(request(tenant, batch))
                    .await
                    .expect("the stream's channel holds every unanswered batch");
            }
            let mut client = MeasurementServiceClient::new(connection.authed());
            let ended = match client.stream_measurements(ReceiverStream::new(rx)).await {
                Err(status) => status,
                Ok(answers) => {
                    let mut answers = answers.into_inner();
                    loop {
                        tokio::select! {
                            answer = answers.message() => match answer {
                                Ok(Some(answer)) => {
                                    let Some(batch) = unanswered.pop_front() else {
                                        return Err(Failure::Server(format!(
                                            "error: the server answered batch {} which was never sent",
                                            answer.sequence
                                        )));
                                    };
                                    if answer.sequence != batch.sequence {
                                        return Err(Failure::Server(format!(
                                            "error: the server answered batch {} before batch {}",
                                            answer.sequence, batch.sequence
                                        )));
                                    }
                                    self.acknowledged(&batch, &answer)?;
                                    retries = 0;
                                    if read_all && unanswered.is_empty() {
                                        return Ok(());
                                    }
                                }
                                Ok(None) => break tonic::Status::unavailable(
                                    "the server ended the stream before it answered every batch",
                                ),
                                Err(status) => break status,
                            },
                            next = batches.recv(), if !read_all && unanswered.len() < IN_FLIGHT => {
                                match next {
                                    Some(Ok(batch)) => {
                                        // A broken stream shows in its answers.
                                        let _ = tx.send(request(tenant, &batch)).await;
                                        self.progress.sent(batch.measurements.len());
                                        unanswered.push_back(batch);
                                    }
                                    Some(Err(failure)) => return Err(failure),
                                    None => {
                                        read_all = true;
                                        if unanswered.is_empty() {
                                            return Ok(());
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            };
            if ended.code() != Code::Unavailable || retries == RETRIES {
                self.progress.clear();
                return Err(connection.failure(&ended, "report measurements"));
            }
            let wait = FIRST_BACKOFF
                .saturating_mul(1u32 << retries)
                .min(MAX_BACKOFF);
            retries += 1;
            self.progress.clear();
            eprintln!(
                "the stream failed ({}); resending {} unanswered batches in {:.1}s (retry {retries} of {RETRIES})",
                ended.message(),
                unanswered.len(),
                wait.as_secs_f64()
            );
            tokio::time::sleep(wait).await;
        }
    }

    /// Takes one batch's answer: lists its rejections and records it.
    fn acknowledged(
        &mut self,
        batch: &Batch,
        answer: &pb::StreamMeasurementsResponse,
    ) -> Result<(), Failure> {
        if !answer.rejections.is_empty() {
            self.progress.clear();
        }
        for r in &answer.rejections {
            let line = usize::try_from(r.index)
                .ok()
                .and_then(|i| batch.lines.get(i))
                .map_or_else(|| "?".to_string(), usize::to_string);
            println!(
                "{}:{line}: {} rejected: {}: {}",
                self.file.display(),
                r.id,
                r.reason,
                r.message
            );
        }
        let done = &mut self.state.acknowledged;
        done.measurements += batch.measurements.len() as u64;
        done.line = batch.lines.last().copied().unwrap_or(done.line);
        done.accepted += answer.accepted as u64;
        done.duplicates += answer.duplicates as u64;
        done.rejected += answer.rejections.len() as u64;
        let so_far = done.measurements;
        self.state.save(&self.state_path)?;
        self.progress.acknowledged(so_far);
        Ok(())
    }
}

fn request(tenant: &str, batch: &Batch) -> pb::StreamMeasurementsRequest {
    pb::StreamMeasurementsRequest {
        parent: tenant.to_string(),
        measurements: batch.measurements.clone(),
        sequence: batch.sequence,
    }
}

/// One line on stderr, redrawn a few times a second: measurements sent,
/// acknowledged, and the rate. Only on a terminal.
struct Progress {
    shown: bool,
    total: u64,
    sent: u64,
    acknowledged: u64,
    /// Acknowledged by earlier runs: not counted in this one's rate.
    before: u64,
    start: Instant,
    drawn: Option<Instant>,
}

impl Progress {
    fn new(shown: bool, total: u64, before: u64) -> Self {
        Self {
            shown,
            total,
            sent: before,
            acknowledged: before,
            before,
            start: Instant::now(),
            drawn: None,
        }
    }

    fn sent(&mut self, measurements: usize) {
        self.sent += measurements as u64;
        self.draw();
    }

    fn acknowledged(&mut self, so_far: u64) {
        self.acknowledged = so_far;
        self.draw();
    }

    fn draw(&mut self) {
        if !self.shown
            || self
                .drawn
                .is_some_and(|d| d.elapsed() < Duration::from_millis(200))
        {
            return;
        }
        let seconds = self.start.elapsed().as_secs_f64().max(0.001);
        let rate = (self.acknowledged - self.before) as f64 / seconds;
        let percent = self.acknowledged as f64 * 100.0 / self.total.max(1) as f64;
        let mut err = std::io::stderr().lock();
        let _ = write!(
            err,
            "\r\x1b[2K{} of {} measurements sent, {} acknowledged ({percent:.0}%), {rate:.0}/s",
            self.sent, self.total, self.acknowledged
        );
        let _ = err.flush();
        self.drawn = Some(Instant::now());
    }

    /// Wipes the line, before anything else is printed.
    fn clear(&mut self) {
        if self.drawn.take().is_some() {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[2K");
            let _ = err.flush();
        }
    }
}
