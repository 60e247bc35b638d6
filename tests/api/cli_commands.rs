//! `accord compliance`, `breaches`, `credits`, `keys`, `tenants` and
//! `completions`, run as the real binary against a real server: a bank
//! whose deal missed yesterday (a breach, and a credit of 100.00 EUR), keys
//! created and revoked, tenants created and deleted, and the refusals.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use accord::config::Config;
use accord::proto::v1 as pb;

use crate::cli::{accord, succeeded};
use crate::on_both_backends;
use crate::support::*;

fn fast_closer(c: &mut Config) {
    c.breach_check_interval = Duration::from_secs(1);
}

/// `instant` as RFC 3339, as the commands take it.
fn rfc3339(t: &prost_types::Timestamp) -> String {
    instant(t).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// The bank's deal on payments: availability judged per UTC day against
/// 0.999, 10 % of a 1,000.00 EUR fee below it; yesterday 900 good of
/// 1,000 (0.9): BREACHED, 100.00 EUR owed. Returns once the breach is written.
async fn a_missed_day(w: &World) {
    w.publish(
        "deal",
        pb::Agreement {
            credits: Some(fee_credits(100_000, &[(0.999, 10.0)])),
            ..w.deal(&w.bank, vec![daily(availability(0.999))])
        },
    )
    .await;
    w.report_all(vec![counts("m1", &w.payments, days_ago(1, 12), 900, 1000)])
        .await;
    let w = w.clone();
    eventually(Duration::from_secs(30), || {
        let w = w.clone();
        async move {
            let page = w
                .breaches()
                .list_breaches(pb::ListBreachesRequest {
                    parent: w.tenant.clone(),
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner();
            !page.breaches.is_empty()
        }
    })
    .await;
}

#[track_caller]
fn row<'a>(output: &'a str, starts_with: &str) -> &'a str {
    output
        .lines()
        .find(|l| l.starts_with(starts_with))
        .unwrap_or_else(|| panic!("no line starting {starts_with:?} in:\n{output}"))
}

#[track_caller]
fn holds(output: &str, needle: &str) {
    assert!(output.contains(needle), "no {needle:?} in:\n{output}");
}

#[track_caller]
fn refused(run: &Ended, code: i32, needle: &str) {
    assert_eq!(run.status.code(), Some(code), "{}", run.output);
    holds(&run.output, needle);
}

async fn compliance_prints_each_objective_in_each_format(s: TestServer) {
    let w = World::new(&s, "acme").await;
    a_missed_day(&w).await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let yesterday = rfc3339(&days_ago(1, 12));

    let table = accord(
        &s,
        &w,
        d,
        &["compliance", "deal", "--period-containing", &yesterday],
    )
    .await;
    succeeded(&table);
    holds(&table.output, "compliance as of ");
    let line = row(&table.output, "availability ");
    for cell in [
        "payments",
        "bank",
        "http_success",
        "0.999",
        "0.9 ",
        "900/1000",
        "BREACHED",
        "-99 of 1 events",
        "(closed)",
        "10% 100.00 EUR",
    ] {
        assert!(line.contains(cell), "no {cell:?} in:\n{}", table.output);
    }
    holds(&table.output, "burn rates:");
    holds(&table.output, "5m -, 30m -");

    // The pair's view, by resource names, as JSON.
    let json = accord(
        &s,
        &w,
        d,
        &[
            "compliance",
            "--consumer",
            "tenants/acme/parties/bank",
            "--service",
            "payments",
            "--period-containing",
            &yesterday,
            "-o",
            "json",
        ],
    )
    .await;
    succeeded(&json);
    let value: serde_json::Value = serde_json::from_str(&json.output).unwrap();
    let o = &value["objectives"][0];
    assert_eq!(o["status"], "COMPLIANCE_STATUS_BREACHED", "{value:#}");
    assert_eq!(o["attainment"], 0.9);
    assert_eq!(o["credit"]["amount"]["amount_minor"], "10000");
    assert_eq!(o["consumer"], w.bank);

    // An explicit interval: below target, never breached, no credit owed.
    let yaml = accord(
        &s,
        &w,
        d,
        &[
            "compliance",
            "deal",
            "--start",
            &rfc3339(&days_ago(1, 0)),
            "--end",
            &rfc3339(&days_ago(0, 0)),
            "-o",
            "yaml",
        ],
    )
    .await;
    succeeded(&yaml);
    holds(&yaml.output, "key: availability");
    holds(&yaml.output, "status: COMPLIANCE_STATUS_BELOW_TARGET");

    let missing = accord(&s, &w, d, &["compliance", "nope"]).await;
    refused(
        &missing,
        1,
        "error: get compliance of tenants/acme/agreements/nope: NOT_FOUND",
    );
    let no_entitlement = accord(
        &s,
        &w,
        d,
        &[
            "compliance",
            "--consumer",
            "nobody",
            "--service",
            "payments",
        ],
    )
    .await;
    refused(&no_entitlement, 1, "NOT_FOUND");
}

async fn breaches_are_listed_in_each_format_and_by_flag(s: TestServer) {
    let w = World::new(&s, "acme").await;
    a_missed_day(&w).await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();

    let table = accord(&s, &w, d, &["breaches"]).await;
    succeeded(&table);
    let lines: Vec<&str> = table.output.lines().collect();
    assert_eq!(lines.len(), 2, "a header and one breach:\n{}", table.output);
    assert!(lines[0].starts_with("NAME "), "{}", table.output);
    let line = row(&table.output, "b-");
    for cell in [
        " deal ",
        " availability ",
        " bank ",
        " payments ",
        &rfc3339(&days_ago(1, 0)),
        " 0.9 ",
        " 0.999 ",
        "10% 100.00 EUR",
        " OPEN ",
    ] {
        assert!(line.contains(cell), "no {cell:?} in:\n{}", table.output);
    }

    let json = accord(
        &s,
        &w,
        d,
        &[
            "breaches",
            "--agreement",
            "deal",
            "--consumer",
            "bank",
            "--service",
            "payments",
            "--objective",
            "availability",
            "--state",
            "open",
            "--period-containing",
            &rfc3339(&days_ago(1, 12)),
            "-o",
            "json",
        ],
    )
    .await;
    succeeded(&json);
    let value: serde_json::Value = serde_json::from_str(&json.output).unwrap();
    assert_eq!(value.as_array().unwrap().len(), 1, "{value:#}");
    assert_eq!(value[0]["agreement"], "tenants/acme/agreements/deal");
    assert_eq!(value[0]["state"], "BREACH_STATE_OPEN");

    // Each flag narrows: none of these match the one breach.
    for flags in [
        &["--state", "withdrawn"][..],
        &["--service-wide"],
        &["--objective", "latency"],
        &["--period-containing", &rfc3339(&days_ago(3, 12))],
    ] {
        let args: Vec<&str> = ["breaches", "-o", "yaml"]
            .into_iter()
            .chain(flags.iter().copied())
            .collect();
        let none = accord(&s, &w, d, &args).await;
        succeeded(&none);
        assert_eq!(none.output.trim(), "[]", "{flags:?}: {}", none.output);
    }
    let yaml = accord(&s, &w, d, &["breaches", "-o", "yaml"]).await;
    succeeded(&yaml);
    holds(&yaml.output, "objective_key: availability");

    let bad = accord(
        &s,
        &w,
        d,
        &["breaches", "--agreement", "tenants/other/agreements/x"],
    )
    .await;
    refused(&bad, 1, "INVALID_ARGUMENT");
}

async fn credits_show_the_statement_with_money_in_each_format(s: TestServer) {
    let w = World::new(&s, "acme").await;
    a_missed_day(&w).await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let yesterday = rfc3339(&days_ago(1, 12));

    let table = accord(
        &s,
        &w,
        d,
        &["credits", "--consumer", "bank", "--period", &yesterday],
    )
    .await;
    succeeded(&table);
    holds(&table.output, "credits of bank as of ");
    let agreement = row(&table.output, "deal ");
    for cell in ["platform", "owed", "100.00 EUR"] {
        assert!(
            agreement.contains(cell),
            "no {cell:?} in:\n{}",
            table.output
        );
    }
    let objective = table
        .output
        .lines()
        .find(|l| l.starts_with("deal ") && l.contains("availability"))
        .unwrap_or_else(|| panic!("{}", table.output));
    assert!(
        objective.contains("BREACHED") && objective.contains("10% 100.00 EUR"),
        "{}",
        table.output
    );
    holds(&table.output, "total: 100.00 EUR");

    let json = accord(
        &s,
        &w,
        d,
        &[
            "credits",
            "deal",
            "--consumer",
            "bank",
            "--period",
            &yesterday,
            "-o",
            "json",
        ],
    )
    .await;
    succeeded(&json);
    let value: serde_json::Value = serde_json::from_str(&json.output).unwrap();
    assert_eq!(value["agreements"][0]["credit"]["amount_minor"], "10000");
    assert_eq!(value["totals"][0]["currency_code"], "EUR");

    let yaml = accord(
        &s,
        &w,
        d,
        &[
            "credits",
            "--consumer",
            "bank",
            "--period",
            &yesterday,
            "-o",
            "yaml",
        ],
    )
    .await;
    succeeded(&yaml);
    holds(&yaml.output, "agreement: tenants/acme/agreements/deal");

    // Another agreement of the tenant owes the bank nothing this period.
    w.publish("sla", w.sla(vec![daily(availability(0.99))]))
        .await;
    let other = accord(
        &s,
        &w,
        d,
        &[
            "credits",
            "sla",
            "--consumer",
            "bank",
            "--period",
            &yesterday,
        ],
    )
    .await;
    succeeded(&other);
    holds(&other.output, "total: nothing owed");
    assert!(!other.output.contains("100.00"), "{}", other.output);

    let missing = accord(&s, &w, d, &["credits", "nope", "--consumer", "bank"]).await;
    refused(
        &missing,
        1,
        "error: get tenants/acme/agreements/nope: NOT_FOUND",
    );
    let nobody = accord(&s, &w, d, &["credits", "--consumer", "nobody"]).await;
    refused(&nobody, 1, "NOT_FOUND");
}

/// `accord args` with `key`, stdout and stderr apart.
fn run_apart(
    s: &TestServer,
    w: &World,
    dir: &Path,
    key: &str,
    args: &[&str],
) -> (i32, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_accord"));
    for (k, _) in std::env::vars() {
        if k.starts_with("ACCORD_") {
            cmd.env_remove(k);
        }
    }
    let out = cmd
        .args(args)
        .current_dir(dir)
        .env("ACCORD_SERVER", format!("http://127.0.0.1:{}", s.port))
        .env("ACCORD_API_KEY", key)
        .env("ACCORD_TENANT", &w.id)
        .env("HOME", dir)
        .env("XDG_CONFIG_HOME", dir)
        .stdin(Stdio::null())
        .output()
        .expect("run accord");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

async fn a_created_key_prints_only_its_secret_and_works_until_revoked(s: TestServer) {
    let w = World::new(&s, "acme").await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();

    let (code, stdout, stderr) = run_apart(
        &s,
        &w,
        d,
        &w.admin_key,
        &[
            "keys",
            "create",
            "ops",
            "--role",
            "reader",
            "--display-name",
            "Ops",
            "--expire-time",
            "2099-01-01T00:00:00Z",
        ],
    );
    assert_eq!(code, 0, "{stderr}");
    let secret = stdout.trim_end_matches('\n');
    assert!(
        secret.starts_with("acc_") && !secret.contains('\n'),
        "stdout holds the secret alone: {stdout:?}"
    );
    assert!(
        stderr.contains(
            "key tenants/acme/apiKeys/ops created: role READER, expires 2099-01-01T00:00:00Z"
        ),
        "{stderr}"
    );
    assert!(!stderr.contains(secret), "{stderr}");

    let mut as_ops = w.clone();
    as_ops.admin_key = secret.to_string();
    succeeded(&accord(&s, &as_ops, d, &["get", "parties"]).await);
    // A reader may not create keys.
    let denied = accord(&s, &as_ops, d, &["keys", "create", "--role", "editor"]).await;
    refused(&denied, 4, "the API key may not do this");

    let list = accord(&s, &w, d, &["keys", "list"]).await;
    succeeded(&list);
    let line = row(&list.output, "ops ");
    assert!(
        line.contains("READER") && line.contains("2099-01-01"),
        "{}",
        list.output
    );
    let json = accord(&s, &w, d, &["keys", "list", "-o", "json"]).await;
    succeeded(&json);
    let value: serde_json::Value = serde_json::from_str(&json.output).unwrap();
    assert!(
        value
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k["display_name"] == "Ops"),
        "{value:#}"
    );

    // Without an id the key gets one.
    let (code, stdout, stderr) = run_apart(
        &s,
        &w,
        d,
        &w.admin_key,
        &["keys", "create", "--role", "reporter"],
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.starts_with("acc_"), "{stdout}");
    assert!(
        stderr.contains("apiKeys/key-") && stderr.contains("REPORTER"),
        "{stderr}"
    );

    let revoke = accord(&s, &w, d, &["keys", "revoke", "ops"]).await;
    succeeded(&revoke);
    holds(&revoke.output, "key tenants/acme/apiKeys/ops revoked at ");
    let refused_now = accord(&s, &as_ops, d, &["get", "parties"]).await;
    refused(&refused_now, 4, "the server refused the API key");

    let again = accord(&s, &w, d, &["keys", "create", "ops", "--role", "reader"]).await;
    refused(&again, 1, "ALREADY_EXISTS");
    let unknown = accord(&s, &w, d, &["keys", "revoke", "nope"]).await;
    refused(&unknown, 1, "NOT_FOUND");
}

async fn tenants_are_created_listed_and_deleted_once_confirmed(s: TestServer) {
    let mut platform = World::empty(&s, "acme").await;
    platform.admin_key = s.platform_key.clone();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();

    let created = accord(
        &s,
        &platform,
        d,
        &["tenants", "create", "beta", "--display-name", "Beta corp"],
    )
    .await;
    succeeded(&created);
    holds(&created.output, "tenant tenants/beta created");
    let list = accord(&s, &platform, d, &["tenants", "list"]).await;
    succeeded(&list);
    assert!(
        row(&list.output, "beta ").contains("Beta corp"),
        "{}",
        list.output
    );
    let yaml = accord(&s, &platform, d, &["tenants", "list", "-o", "yaml"]).await;
    succeeded(&yaml);
    holds(&yaml.output, "name: tenants/beta");

    // No terminal to ask on, no --yes: refused, nothing deleted.
    let unasked = accord(&s, &platform, d, &["tenants", "delete", "beta"]).await;
    refused(
        &unasked,
        2,
        "error: delete tenants/beta: no terminal to confirm on; pass --yes",
    );
    succeeded(&accord(&s, &platform, d, &["get", "tenant", "beta"]).await);

    // A tenant holding a party is deleted only with --force.
    let mut beta = platform.clone();
    beta.id = "beta".into();
    beta.admin_key = s.create_key("beta", "admin", pb::Role::TenantAdmin).await;
    std::fs::write(
        d.join("party.yaml"),
        "kind: Party\nid: p\nspec:\n  kind: PARTY_KIND_PROVIDER\n",
    )
    .unwrap();
    succeeded(&accord(&s, &beta, d, &["apply", "-f", "party.yaml"]).await);
    let held = accord(&s, &platform, d, &["tenants", "delete", "beta", "--yes"]).await;
    refused(&held, 1, "FAILED_PRECONDITION");
    let deleted = accord(
        &s,
        &platform,
        d,
        &["tenants", "delete", "beta", "--yes", "--force"],
    )
    .await;
    succeeded(&deleted);
    holds(&deleted.output, "tenant tenants/beta deleted");
    let gone = accord(&s, &platform, d, &["get", "tenant", "beta"]).await;
    refused(&gone, 1, "NOT_FOUND");

    // Only a PLATFORM_ADMIN key manages tenants.
    let tenant_admin = World::empty(&s, "gamma").await;
    let denied = accord(&s, &tenant_admin, d, &["tenants", "create", "delta"]).await;
    refused(&denied, 4, "the API key may not do this");
}

on_both_backends!(
    configured by fast_closer:
    compliance_prints_each_objective_in_each_format,
    breaches_are_listed_in_each_format_and_by_flag,
    credits_show_the_statement_with_money_in_each_format,
);

mod keys_and_tenants {
    use super::*;
    on_both_backends!(
        a_created_key_prints_only_its_secret_and_works_until_revoked,
        tenants_are_created_listed_and_deleted_once_confirmed,
    );
}

/// `accord args` without a server: what the command line alone decides.
fn offline(args: &[&str]) -> Ended {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().display().to_string();
    Accord::start(
        dir.path(),
        args,
        &[
            ("ACCORD_API_KEY", "k"),
            ("ACCORD_TENANT", "acme"),
            ("ACCORD_SERVER", "http://127.0.0.1:1"),
            ("HOME", &home),
            ("XDG_CONFIG_HOME", &home),
        ],
    )
    .wait()
}

#[test]
fn completion_scripts_name_every_command() {
    let bash = offline(&["completions", "bash"]);
    assert!(bash.status.success(), "{}", bash.output);
    holds(&bash.output, "_accord()");
    for command in [
        "compliance",
        "breaches",
        "credits",
        "keys",
        "tenants",
        "completions",
        "apply",
        "resolve",
    ] {
        holds(&bash.output, &format!("accord,{command})"));
    }
    holds(&bash.output, "accord__subcmd__keys,revoke)");
    for shell in ["zsh", "fish", "powershell", "elvish"] {
        let script = offline(&["completions", shell]);
        assert!(script.status.success(), "{shell}: {}", script.output);
        holds(&script.output, "compliance");
    }
    let unknown = offline(&["completions", "tcsh"]);
    refused(&unknown, 2, "invalid value 'tcsh'");
}

#[test]
fn what_the_command_line_gets_wrong_is_a_usage_error() {
    for (args, message) in [
        (
            &["compliance"][..],
            "the following required arguments were not provided",
        ),
        (
            &[
                "compliance",
                "deal",
                "--consumer",
                "bank",
                "--service",
                "payments",
            ],
            "cannot be used with",
        ),
        (&["compliance", "--consumer", "bank"], "--service <SERVICE>"),
        (
            &["compliance", "deal", "--start", "2026-01-01T00:00:00Z"],
            "--end <END>",
        ),
        (
            &[
                "compliance",
                "deal",
                "--start",
                "2026-01-01T00:00:00Z",
                "--end",
                "2026-01-02T00:00:00Z",
                "--period-containing",
                "2026-01-01T00:00:00Z",
            ],
            "cannot be used with",
        ),
        (
            &["compliance", "deal", "--as-of", "yesterday"],
            "not an RFC 3339 time",
        ),
        (&["breaches", "--state", "closed"], "invalid value 'closed'"),
        (
            &["breaches", "--consumer", "bank", "--service-wide"],
            "cannot be used with",
        ),
        (&["credits", "deal"], "--consumer <CONSUMER>"),
        (
            &["credits", "--consumer", "bank", "--period", "May"],
            "not an RFC 3339 time",
        ),
        (
            &["keys", "create", "--role", "platform-admin"],
            "invalid value 'platform-admin'",
        ),
        (&["keys", "create", "x"], "--role <ROLE>"),
        (&["keys", "revoke"], "<ID>"),
        (&["tenants", "create"], "<ID>"),
    ] {
        let run = offline(args);
        assert_eq!(run.status.code(), Some(2), "{args:?}: {}", run.output);
        assert!(
            run.output.contains(message),
            "{args:?}: no {message:?} in:\n{}",
            run.output
        );
    }
}
