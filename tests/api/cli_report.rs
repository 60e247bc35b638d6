//! `accord report FILE` as the real binary against a real server: CSV and
//! JSON lines of each kind stored as written, a second run all duplicates,
//! a run killed with SIGKILL and resumed without counting anything twice,
//! a state file that no longer fits its input refused, bad lines named by
//! line and column before anything is sent, rejections listed by line, and
//! an unreachable server given up on after a few retries.

use std::path::Path;
use std::time::{Duration, Instant};

use accord::domain::measurement::{Level, View};
use chrono::SecondsFormat;

use crate::cli::{accord, start_accord, succeeded, write};
use crate::on_both_backends;
use crate::support::*;

/// `seconds` ago, in RFC 3339 (to the microsecond, as the stores keep it).
fn rfc3339(seconds: i64) -> String {
    instant(&ago(seconds)).to_rfc3339_opts(SecondsFormat::Micros, true)
}

async fn stored(s: &TestServer, w: &World) -> Stored {
    Stored::of(s.store().await, &w.id)
}

/// (good, total) of `REQUESTS` on payments, every report.
async fn request_counts(s: &TestServer, w: &World) -> (i64, i64) {
    stored(s, w)
        .await
        .counts("payments", &View::ServiceWide, Level::Raw, around_now())
        .await
}

fn has(run: &Ended, text: &str) {
    assert!(run.output.contains(text), "no {text:?} in:\n{}", run.output);
}

async fn a_csv_of_each_kind_is_stored_and_a_second_run_is_all_duplicates(s: TestServer) {
    let w = World::new(&s, "acme").await;
    w.measured_sla().await;
    let dir = tempfile::tempdir().unwrap();
    let (t, down, up) = (rfc3339(600), rfc3339(500), rfc3339(400));
    // Columns in an order of their own; a blank line; a full service name;
    // a consumer.
    write(
        dir.path(),
        "m.csv",
        &format!(
            "indicator,id,service,consumer,good,total,time,value,start_time,end_time\n\
             http_success,c-1,payments,,9,10,{t},,,\n\
             \n\
             http_success,c-2,tenants/acme/services/payments,bank,5,5,{t},,,\n\
             p99_latency_ms,s-1,payments,,,,{t},120.5,,\n\
             downtime,d-1,payments,,,,,,{down},{up}\n"
        ),
    );

    let run = accord(&s, &w, dir.path(), &["report", "m.csv"]).await;
    succeeded(&run);
    has(
        &run,
        "reported 4 measurements: 4 accepted, 0 duplicates, 0 rejected",
    );
    assert_eq!(request_counts(&s, &w).await, (14, 15));
    let db = stored(&s, &w).await;
    assert_eq!(
        db.counts(
            "payments",
            &View::Consumer(accord::domain::names::Id::parse("id", "bank").unwrap()),
            Level::Raw,
            around_now()
        )
        .await,
        (14, 15),
        "the untagged counts and bank's"
    );
    assert_eq!(db.samples("payments").await, [120.5]);
    assert_eq!(db.downtime("payments").await.len(), 1);
    assert!(
        !dir.path().join("m.csv.accord-report").exists(),
        "a finished run leaves no state file"
    );

    let again = accord(&s, &w, dir.path(), &["report", "m.csv", "--no-progress"]).await;
    succeeded(&again);
    has(
        &again,
        "reported 4 measurements: 0 accepted, 4 duplicates, 0 rejected",
    );
    assert!(!again.output.contains("resuming"), "{}", again.output);
    assert_eq!(request_counts(&s, &w).await, (14, 15));
}

async fn json_lines_of_each_kind_are_stored(s: TestServer) {
    let w = World::new(&s, "acme").await;
    w.measured_sla().await;
    let dir = tempfile::tempdir().unwrap();
    let (t, down, up) = (rfc3339(600), rfc3339(500), rfc3339(400));
    write(
        dir.path(),
        "m.ndjson",
        &format!(
            "{{\"id\":\"c-1\",\"service\":\"payments\",\"indicator\":\"http_success\",\"time\":\"{t}\",\"counts\":{{\"good\":\"9\",\"total\":10}}}}\n\
             \n\
             {{\"id\":\"c-2\",\"service\":\"tenants/acme/services/payments\",\"consumer\":\"bank\",\"indicator\":\"http_success\",\"time\":\"{t}\",\"counts\":{{\"good\":5,\"total\":5}}}}\n\
             {{\"id\":\"s-1\",\"service\":\"payments\",\"indicator\":\"p99_latency_ms\",\"time\":\"{t}\",\"sample\":{{\"value\":120.5}}}}\n\
             {{\"id\":\"d-1\",\"service\":\"payments\",\"indicator\":\"downtime\",\"downtime\":{{\"startTime\":\"{down}\",\"end_time\":\"{up}\"}}}}\n"
        ),
    );

    let run = accord(&s, &w, dir.path(), &["report", "m.ndjson"]).await;
    succeeded(&run);
    has(
        &run,
        "reported 4 measurements: 4 accepted, 0 duplicates, 0 rejected",
    );
    assert_eq!(request_counts(&s, &w).await, (14, 15));
    let db = stored(&s, &w).await;
    assert_eq!(db.samples("payments").await, [120.5]);
    assert_eq!(db.downtime("payments").await.len(), 1);
    assert_eq!(
        db.keys(&["c-1", "c-2", "s-1", "d-1"]).await,
        ["c-1", "c-2", "d-1", "s-1"]
    );
}

/// The state file's count of acknowledged measurements, once there is one.
fn acknowledged(state: &Path) -> Option<(u64, u64)> {
    let text = std::fs::read_to_string(state).ok()?;
    let value: serde_json::Value = serde_json::from_str(&text).expect("a whole state file");
    let done = &value["acknowledged"];
    Some((done["measurements"].as_u64()?, done["line"].as_u64()?))
}

async fn a_killed_run_resumes_after_what_was_acknowledged_and_counts_nothing_twice(s: TestServer) {
    let w = World::new(&s, "acme").await;
    w.measured_sla().await;
    let dir = tempfile::tempdir().unwrap();
    const LINES: i64 = 6000;
    let t = rfc3339(600);
    let mut text = String::from("id,service,indicator,time,good,total\n");
    for i in 0..LINES {
        text.push_str(&format!("m-{i},payments,http_success,{t},{},3\n", i % 4));
    }
    let good: i64 = (0..LINES).map(|i| i % 4).sum();
    write(dir.path(), "big.csv", &text);
    let state = dir.path().join("big.csv.accord-report");

    let port = s.port;
    let (w2, path, state2) = (w.clone(), dir.path().to_path_buf(), state.clone());
    let (killed, before) = tokio::task::spawn_blocking(move || {
        let run = start_accord(
            port,
            &w2,
            &path,
            &["report", "big.csv", "--batch-size", "7"],
        );
        let deadline = Instant::now() + PATIENCE;
        let before = loop {
            if let Some((done, _)) = acknowledged(&state2).filter(|(done, _)| *done > 0) {
                break done;
            }
            assert!(Instant::now() < deadline, "no progress:\n{}", run.output());
            std::thread::sleep(Duration::from_millis(2));
        };
        (run.kill(), before)
    })
    .await
    .unwrap();
    assert!(
        !killed.output.contains("reported "),
        "killed before it ended:\n{}",
        killed.output
    );
    let (done, line) = acknowledged(&state).expect("the state survives SIGKILL");
    assert!(
        done >= before && done < LINES as u64,
        "{done} of {LINES} acknowledged"
    );
    assert_eq!(line, done + 1, "a header and one line per measurement");

    // The input changed: the state no longer fits it.
    write(dir.path(), "big.csv", &text.replace("m-0,", "m-x,"));
    let refused = accord(&s, &w, dir.path(), &["report", "big.csv"]).await;
    assert_eq!(refused.status.code(), Some(2), "{}", refused.output);
    has(&refused, "does not fit big.csv: the input changed");
    has(&refused, "pass --restart");
    assert_eq!(acknowledged(&state), Some((done, line)), "left as it was");

    write(dir.path(), "big.csv", &text);
    let resumed = accord(&s, &w, dir.path(), &["report", "big.csv"]).await;
    succeeded(&resumed);
    has(
        &resumed,
        &format!("resuming after line {line}: {done} of {LINES}"),
    );
    let summary = resumed
        .output
        .lines()
        .find(|l| l.starts_with("reported "))
        .unwrap_or_else(|| panic!("{}", resumed.output));
    let numbers: Vec<u64> = summary
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|n| n.parse().ok())
        .collect();
    let [reported, accepted, duplicates, rejected] = numbers[..] else {
        panic!("{summary}")
    };
    assert_eq!(reported, LINES as u64, "{summary}");
    assert_eq!(
        accepted + duplicates,
        LINES as u64,
        "every line once: {summary}"
    );
    assert_eq!(rejected, 0, "{summary}");
    assert_eq!(request_counts(&s, &w).await, (good, 3 * LINES));
    assert!(!state.exists());

    // --restart reports a changed file from its start, over a stale state.
    std::fs::write(&state, "{}").unwrap();
    let restarted = accord(&s, &w, dir.path(), &["report", "big.csv", "--restart"]).await;
    succeeded(&restarted);
    has(
        &restarted,
        &format!("reported {LINES} measurements: 0 accepted, {LINES} duplicates"),
    );
    assert_eq!(request_counts(&s, &w).await, (good, 3 * LINES));
}

async fn bad_lines_are_named_by_line_and_column_before_anything_is_sent(s: TestServer) {
    let w = World::new(&s, "acme").await;
    w.measured_sla().await;
    let dir = tempfile::tempdir().unwrap();
    let t = rfc3339(600);

    write(dir.path(), "header.csv", "id,service,time,good,total\n");
    let run = accord(&s, &w, dir.path(), &["report", "header.csv"]).await;
    assert_eq!(run.status.code(), Some(1), "{}", run.output);
    has(
        &run,
        "error: header.csv:1: no column indicator: the header must name id, service and indicator",
    );

    write(
        dir.path(),
        "rows.csv",
        &format!(
            "id,service,indicator,time,good,total,value\n\
             ok,payments,http_success,{t},1,1,\n\
             n,payments,http_success,{t},1,ten,\n\
             k,payments,http_success,{t},1,2,3.5\n\
             m,payments,http_success,{t},1,,\n"
        ),
    );
    let run = accord(&s, &w, dir.path(), &["report", "rows.csv"]).await;
    assert_eq!(run.status.code(), Some(1), "{}", run.output);
    has(
        &run,
        "error: rows.csv:3:total: \"ten\" is not a whole number",
    );
    has(
        &run,
        "error: rows.csv:4:value: a row is one kind of measurement; this one is counts and a sample",
    );
    has(&run, "error: rows.csv:5:total: missing");

    write(
        dir.path(),
        "m.jsonl",
        &format!(
            "{{\"id\":\"j\",\"service\":\"payments\",\"indicator\":\"http_success\",\"time\":\"{t}\",\"counts\":{{\"good\":1,\"total\":1}}}}\n\
             {{\"id\":\"k\",\"service\":\"payments\",\"colour\":\"red\"}}\n"
        ),
    );
    let run = accord(&s, &w, dir.path(), &["report", "m.jsonl"]).await;
    assert_eq!(run.status.code(), Some(1), "{}", run.output);
    has(&run, "error: m.jsonl:2: unrecognized field name 'colour'");

    write(dir.path(), "m.txt", "id\n");
    let run = accord(&s, &w, dir.path(), &["report", "m.txt"]).await;
    assert_eq!(run.status.code(), Some(2), "{}", run.output);
    has(&run, "pass --format csv or --format jsonl");

    assert!(
        stored(&s, &w).await.keys(&["ok", "j"]).await.is_empty(),
        "nothing was sent"
    );
}

async fn rejected_measurements_are_listed_by_line_and_the_rest_stored(s: TestServer) {
    let w = World::new(&s, "acme").await;
    w.measured_sla().await;
    let dir = tempfile::tempdir().unwrap();
    let t = rfc3339(600);
    write(
        dir.path(),
        "m.csv",
        &format!(
            "id,service,indicator,time,good,total\n\
             a,payments,http_success,{t},1,2\n\
             b,payments,no_such_indicator,{t},1,2\n\
             c,payments,http_success,{t},3,2\n\
             d,payments,http_success,{t},1,2\n"
        ),
    );
    let run = accord(
        &s,
        &w,
        dir.path(),
        &["report", "m.csv", "--batch-size", "2"],
    )
    .await;
    assert_eq!(run.status.code(), Some(1), "{}", run.output);
    has(&run, "m.csv:3: b rejected: UNKNOWN_INDICATOR: ");
    has(&run, "m.csv:4: c rejected: GOOD_EXCEEDS_TOTAL: ");
    has(
        &run,
        "reported 4 measurements: 2 accepted, 0 duplicates, 2 rejected",
    );
    assert_eq!(request_counts(&s, &w).await, (2, 4));
}

async fn an_unreachable_server_is_retried_then_given_up_with_exit_3(s: TestServer) {
    let w = World::new(&s, "acme").await;
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "m.csv",
        &format!(
            "id,service,indicator,time,good,total\na,payments,http_success,{},1,2\n",
            rfc3339(60)
        ),
    );
    let (path, w2) = (dir.path().to_path_buf(), w.clone());
    let run = tokio::task::spawn_blocking(move || {
        // Port 1: nothing listens there.
        start_accord(1, &w2, &path, &["report", "m.csv"]).wait()
    })
    .await
    .unwrap();
    assert_eq!(run.status.code(), Some(3), "{}", run.output);
    has(&run, "(retry 5 of 5)");
    has(&run, "cannot reach the server at http://127.0.0.1:1");
}

on_both_backends!(
    a_csv_of_each_kind_is_stored_and_a_second_run_is_all_duplicates,
    json_lines_of_each_kind_are_stored,
    a_killed_run_resumes_after_what_was_acknowledged_and_counts_nothing_twice,
    bad_lines_are_named_by_line_and_column_before_anything_is_sent,
    rejected_measurements_are_listed_by_line_and_the_rest_stored,
    an_unreachable_server_is_retried_then_given_up_with_exit_3,
);
