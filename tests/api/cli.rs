//! The `accord` client commands, run as the real binary against a real
//! server: `apply` (twice, changed, dry run, bad YAML, a missing party),
//! `get` in each format, `resolve`.

use std::path::Path;

use accord::proto::v1 as pb;

use crate::on_both_backends;
use crate::support::*;

/// The files of a small registry: a customer listed before its parent (so
/// apply must order them), a service, a published SLA and an override, and
/// a customer contract with every kind of term.
const REGISTRY: &str = r#"
kind: Party
id: bank-eu
spec:
  display_name: Bank EU
  kind: PARTY_KIND_CUSTOMER
  parent: bank
---
kind: Party
id: bank
spec:
  display_name: Bank
  kind: PARTY_KIND_CUSTOMER
---
kind: Party
id: platform
spec:
  display_name: Platform
  kind: PARTY_KIND_PROVIDER
  labels:
    team: core
---
kind: Service
id: payments
spec:
  display_name: Payments
  owner: platform
---
kind: Agreement
id: sla
published: true
spec:
  display_name: Payments SLA
  kind: AGREEMENT_KIND_SERVICE_LEVEL
  provider: platform
  services: [payments]
  effective_from: "2026-01-01T00:00:00Z"
  objectives:
    - key: availability
      display_name: Availability
      indicator: http_success
      kind: OBJECTIVE_KIND_RATIO
      target: 0.999
      window:
        rolling:
          duration: 2592000s
---
kind: Agreement
id: bank-contract
published: true
spec:
  display_name: Bank contract
  kind: AGREEMENT_KIND_CUSTOMER
  provider: platform
  consumer: bank
  services: [tenants/acme/services/payments]
  effective_from: "2026-01-01T00:00:00+01:00"
  objectives:
    - key: latency
      indicator: p99_latency_ms
      kind: OBJECTIVE_KIND_THRESHOLD
      target: 0.99
      threshold: 250
      comparison: COMPARISON_LESS_THAN_OR_EQUAL
      window:
        calendar:
          period: CALENDAR_PERIOD_MONTH
          time_zone: Europe/Berlin
  support:
    priorities:
      - priority: P1
        response: 900s
        resolution: 14400s
  credits:
    tiers:
      - attainment_below: 0.99
        credit_percent: 10
      - attainment_below: 0.95
        credit_percent: 25
    cap_percent: 50
    fee:
      amount_minor: "100000"
      currency_code: EUR
    claim_window: 2592000s
  exclusions:
    - reason: weekly maintenance
      recurring:
        rrule: FREQ=WEEKLY;BYDAY=SU
        start: "2026-01-04T02:00:00Z"
        duration: 3600s
        time_zone: Europe/Paris
    - reason: migration
      one_off:
        start_time: "2026-02-10T00:00:00Z"
        end_time: "2026-02-11T00:00:00Z"
  clauses:
    - kind: CLAUSE_KIND_LIABILITY_CAP
      title: Liability
      text: Capped at the fees of twelve months.
      amount:
        amount_minor: 1200000
        currency_code: EUR
  labels:
    tier: gold
---
kind: Override
id: bank-gold
agreement: sla
spec:
  consumer: bank
  effective_from: "2026-01-01T00:00:00Z"
  objective_patches:
    - key: availability
      target: 0.9995
"#;

/// Starts `accord args` in `dir` as the admin of the tenant `w`, with no
/// config file.
pub fn start_accord(port: u16, w: &World, dir: &Path, args: &[&str]) -> Accord {
    let server = format!("http://127.0.0.1:{port}");
    let home = dir.display().to_string();
    let env = [
        ("ACCORD_SERVER", server.as_str()),
        ("ACCORD_API_KEY", w.admin_key.as_str()),
        ("ACCORD_TENANT", w.id.as_str()),
        ("HOME", home.as_str()),
        ("XDG_CONFIG_HOME", home.as_str()),
    ];
    Accord::start(dir, args, &env)
}

/// Runs `accord args` as `key` in the tenant `w`, with no config file.
pub async fn accord(s: &TestServer, w: &World, dir: &Path, args: &[&str]) -> Ended {
    let (port, w) = (s.port, w.clone());
    let dir = dir.to_path_buf();
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        start_accord(port, &w, &dir, &args).wait()
    })
    .await
    .unwrap()
}

pub fn succeeded(run: &Ended) {
    assert!(run.status.success(), "accord failed:\n{}", run.output);
}

pub fn write(dir: &Path, file: &str, text: &str) {
    std::fs::write(dir.join(file), text).unwrap();
}

async fn agreement(w: &World, id: &str) -> pb::Agreement {
    w.agreements()
        .get_agreement(pb::GetAgreementRequest {
            name: w.name("agreements", id),
        })
        .await
        .unwrap()
        .into_inner()
}

async fn apply_twice_creates_then_changes_nothing(s: TestServer) {
    let w = World::empty(&s, "acme").await;
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "registry.yaml", REGISTRY);

    let first = accord(&s, &w, dir.path(), &["apply", "-f", "registry.yaml"]).await;
    succeeded(&first);
    for line in [
        "+ party bank created",
        "+ party bank-eu created",
        "+ service payments created",
        "+ agreement sla created",
        "~ agreement sla published",
        "+ override bank-gold created",
        "applied: 7 created, 0 updated, 2 published, 0 unchanged",
    ] {
        assert!(
            first.output.contains(line),
            "no {line:?} in:\n{}",
            first.output
        );
    }
    let bank = first.output.find("party bank created").unwrap();
    let bank_eu = first.output.find("party bank-eu created").unwrap();
    assert!(bank < bank_eu, "the parent comes first:\n{}", first.output);
    let sla = agreement(&w, "sla").await;
    assert_eq!(sla.state(), pb::AgreementState::Active);
    assert_eq!(sla.provider, w.name("parties", "platform"));
    assert_eq!(sla.services, [w.name("services", "payments")]);
    let revision = sla.revision_id.clone();

    let second = accord(&s, &w, dir.path(), &["apply", "-f", "registry.yaml"]).await;
    succeeded(&second);
    assert!(
        second.output.contains("no changes: 7 unchanged"),
        "{}",
        second.output
    );
    assert!(!second.output.contains("updated"), "{}", second.output);
    assert_eq!(agreement(&w, "sla").await.revision_id, revision);
}

async fn apply_of_a_changed_file_shows_the_diff_and_updates(s: TestServer) {
    let w = World::empty(&s, "acme").await;
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "registry.yaml", REGISTRY);
    succeeded(&accord(&s, &w, dir.path(), &["apply", "-f", "registry.yaml"]).await);
    let before = agreement(&w, "sla").await;

    let changed = REGISTRY
        .replace(
            "display_name: Payments SLA",
            "display_name: Payments SLA 2026",
        )
        .replace("target: 0.999\n", "target: 0.9991\n")
        .replace("  labels:\n    team: core\n", "");
    write(dir.path(), "registry.yaml", &changed);
    let run = accord(&s, &w, dir.path(), &["apply", "-f", "registry.yaml"]).await;
    succeeded(&run);
    for line in [
        "~ party platform updated",
        "- labels: {\"team\":\"core\"}",
        "~ agreement sla updated",
        "~ display_name: \"Payments SLA\" → \"Payments SLA 2026\"",
        "~ objectives[0].target: 0.999 → 0.9991",
        "= service payments unchanged",
        "= party bank-eu unchanged\n= service payments",
        "applied: 0 created, 2 updated, 0 published, 5 unchanged",
    ] {
        assert!(run.output.contains(line), "no {line:?} in:\n{}", run.output);
    }
    let after = agreement(&w, "sla").await;
    assert_eq!(after.display_name, "Payments SLA 2026");
    assert_eq!(after.objectives[0].target, 0.9991);
    assert_ne!(after.revision_id, before.revision_id, "a new revision");
    let platform = w
        .parties()
        .get_party(pb::GetPartyRequest {
            name: w.name("parties", "platform"),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(platform.labels.is_empty(), "{platform:?}");
}

async fn a_draft_is_published_when_the_file_says_so_and_never_unpublished(s: TestServer) {
    let w = World::empty(&s, "acme").await;
    let dir = tempfile::tempdir().unwrap();
    let draft = REGISTRY.replace("id: sla\npublished: true\n", "id: sla\n");
    write(dir.path(), "registry.yaml", &draft);
    succeeded(&accord(&s, &w, dir.path(), &["apply", "-f", "registry.yaml"]).await);
    assert_eq!(
        agreement(&w, "sla").await.state(),
        pb::AgreementState::Draft
    );

    write(dir.path(), "registry.yaml", REGISTRY);
    let publish = accord(&s, &w, dir.path(), &["apply", "-f", "registry.yaml"]).await;
    succeeded(&publish);
    assert!(
        !publish.output.contains("= agreement sla unchanged")
            && publish.output.contains("~ agreement sla published")
            && !publish.output.contains("~ agreement sla updated"),
        "{}",
        publish.output
    );
    assert!(
        publish
            .output
            .contains("applied: 0 created, 0 updated, 1 published, 6 unchanged"),
        "{}",
        publish.output
    );
    assert_eq!(
        agreement(&w, "sla").await.state(),
        pb::AgreementState::Active
    );

    write(dir.path(), "registry.yaml", &draft);
    let unpublish = accord(&s, &w, dir.path(), &["apply", "-f", "registry.yaml"]).await;
    assert_eq!(unpublish.status.code(), Some(1), "{}", unpublish.output);
    assert!(
        unpublish
            .output
            .contains("agreement sla is published on the server and a file cannot unpublish it"),
        "{}",
        unpublish.output
    );
    assert_eq!(
        agreement(&w, "sla").await.state(),
        pb::AgreementState::Active
    );
}

async fn dry_run_shows_the_changes_and_makes_none(s: TestServer) {
    let w = World::empty(&s, "acme").await;
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "registry.yaml", REGISTRY);

    let run = accord(
        &s,
        &w,
        dir.path(),
        &["apply", "--dry-run", "-f", "registry.yaml"],
    )
    .await;
    succeeded(&run);
    assert!(
        run.output.contains("+ agreement sla created"),
        "{}",
        run.output
    );
    assert!(
        run.output
            .contains("dry run, nothing changed: would create 7, update 0, publish 2"),
        "{}",
        run.output
    );
    let parties = party_ids(&w).await;
    assert!(parties.is_empty(), "{parties:?}");
}

async fn yaml_errors_name_the_file_line_and_column(s: TestServer) {
    let w = World::empty(&s, "acme").await;
    let dir = tempfile::tempdir().unwrap();
    // Line 9, column 3: a field Party does not have.
    write(
        dir.path(),
        "bad.yaml",
        "kind: Party\nid: a\nspec:\n  kind: PARTY_KIND_PROVIDER\n---\nkind: Party\nid: b\nspec:\n  colour: red\n",
    );
    let run = accord(&s, &w, dir.path(), &["apply", "-f", "bad.yaml"]).await;
    assert_eq!(run.status.code(), Some(1), "{}", run.output);
    assert!(run.output.contains("bad.yaml:9:3: "), "{}", run.output);
    assert!(run.output.contains("colour"), "{}", run.output);

    // Broken YAML: an unclosed flow sequence.
    write(
        dir.path(),
        "broken.yaml",
        "kind: Party\nid: a\nspec:\n  labels: [a\n",
    );
    let run = accord(&s, &w, dir.path(), &["apply", "-f", "broken.yaml"]).await;
    assert_eq!(run.status.code(), Some(1), "{}", run.output);
    assert!(run.output.contains("broken.yaml:"), "{}", run.output);
    let at = run.output.split("broken.yaml:").nth(1).unwrap();
    let mut parts = at.split(':');
    let line: usize = parts.next().unwrap().parse().unwrap();
    let column: usize = parts.next().unwrap().parse().unwrap();
    assert!(line >= 4 && column >= 1, "{}", run.output);

    let none = party_ids(&w).await;
    assert!(none.is_empty(), "nothing applied: {none:?}");
}

async fn a_reference_to_a_missing_party_is_reported_before_any_write(s: TestServer) {
    let w = World::empty(&s, "acme").await;
    let dir = tempfile::tempdir().unwrap();
    let text = REGISTRY.replace("  owner: platform\n", "  owner: nobody\n");
    write(dir.path(), "registry.yaml", &text);
    let run = accord(&s, &w, dir.path(), &["apply", "-f", "registry.yaml"]).await;
    assert_eq!(run.status.code(), Some(1), "{}", run.output);
    // `nobody` is at column 10 of its line.
    let line = 1 + text.lines().position(|l| l == "  owner: nobody").unwrap();
    let expected = format!(
        "registry.yaml:{line}:10: service payments: owner tenants/acme/parties/nobody \
         is no party in the files or on the server"
    );
    assert!(run.output.contains(&expected), "{}", run.output);
    let none = party_ids(&w).await;
    assert!(none.is_empty(), "nothing applied: {none:?}");
}

async fn what_the_server_refuses_is_shown_with_its_field_and_file(s: TestServer) {
    let w = World::empty(&s, "acme").await;
    let dir = tempfile::tempdir().unwrap();
    let text = REGISTRY.replace("target: 0.999\n", "target: 1.5\n");
    write(dir.path(), "registry.yaml", &text);
    let run = accord(&s, &w, dir.path(), &["apply", "-f", "registry.yaml"]).await;
    assert_eq!(run.status.code(), Some(1), "{}", run.output);
    // The document starts on `kind: Agreement`, the line above `id: sla`.
    let line = text.lines().position(|l| l == "id: sla").unwrap();
    let expected = format!(
        "error: registry.yaml:{line}: create agreement sla: INVALID_ARGUMENT\n  \
         agreement.objectives[0].target: must be in (0, 1]\n"
    );
    assert!(run.output.contains(&expected), "{}", run.output);
    assert!(
        run.output.contains("reason: INVALID_ARGUMENT"),
        "{}",
        run.output
    );
    assert!(
        run.output.contains("+ service payments created"),
        "what came before was applied:\n{}",
        run.output
    );
}

async fn get_prints_each_format(s: TestServer) {
    let w = World::empty(&s, "acme").await;
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "registry.yaml", REGISTRY);
    succeeded(&accord(&s, &w, dir.path(), &["apply", "-f", "registry.yaml"]).await);

    let table = accord(&s, &w, dir.path(), &["get", "parties"]).await;
    succeeded(&table);
    let lines: Vec<&str> = table.output.lines().collect();
    assert!(lines[0].starts_with("NAME"), "{}", table.output);
    assert!(
        lines[0].contains("KIND") && lines[0].contains("PARENT"),
        "{}",
        table.output
    );
    let bank_eu = lines.iter().find(|l| l.starts_with("bank-eu ")).unwrap();
    assert!(
        bank_eu.contains("CUSTOMER") && bank_eu.contains(" bank ") && bank_eu.contains("Bank EU"),
        "{}",
        table.output
    );
    assert_eq!(
        lines.len(),
        4,
        "a header and three parties:\n{}",
        table.output
    );

    let paged = accord(&s, &w, dir.path(), &["get", "parties", "--page-size", "2"]).await;
    succeeded(&paged);
    assert_eq!(paged.output, table.output, "every page, once");

    let json = accord(&s, &w, dir.path(), &["get", "agreements", "-o", "json"]).await;
    succeeded(&json);
    let value: serde_json::Value = serde_json::from_str(&json.output).unwrap();
    assert_eq!(value[1]["name"], "tenants/acme/agreements/sla");
    assert_eq!(value[1]["state"], "AGREEMENT_STATE_ACTIVE");
    assert_eq!(value[1]["objectives"][0]["target"], 0.999);
    assert_eq!(value[0]["credits"]["fee"]["currency_code"], "EUR");
    assert_eq!(value.as_array().unwrap().len(), 2);

    let agreements = accord(&s, &w, dir.path(), &["get", "agreements"]).await;
    succeeded(&agreements);
    let sla = agreements
        .output
        .lines()
        .find(|l| l.starts_with("sla "))
        .unwrap();
    assert!(
        sla.contains("SERVICE_LEVEL") && sla.contains("ACTIVE") && sla.contains("payments"),
        "{}",
        agreements.output
    );

    let yaml = accord(
        &s,
        &w,
        dir.path(),
        &["get", "service", "payments", "-o", "yaml"],
    )
    .await;
    succeeded(&yaml);
    assert!(
        yaml.output.contains("name: tenants/acme/services/payments"),
        "{}",
        yaml.output
    );
    assert!(
        yaml.output.contains("owner: tenants/acme/parties/platform"),
        "{}",
        yaml.output
    );

    let missing = accord(&s, &w, dir.path(), &["get", "party", "nobody"]).await;
    assert_eq!(missing.status.code(), Some(1), "{}", missing.output);
    assert!(missing.output.contains("NOT_FOUND"), "{}", missing.output);
}

async fn resolve_prints_the_entitlement_with_its_provenance(s: TestServer) {
    let w = World::empty(&s, "acme").await;
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "registry.yaml", REGISTRY);
    succeeded(&accord(&s, &w, dir.path(), &["apply", "-f", "registry.yaml"]).await);

    let run = accord(&s, &w, dir.path(), &["resolve", "bank-eu", "payments"]).await;
    succeeded(&run);
    let row = run
        .output
        .lines()
        .find(|l| l.starts_with("availability"))
        .unwrap_or_else(|| panic!("{}", run.output));
    assert!(
        row.contains("0.9995"),
        "the override's target:\n{}",
        run.output
    );
    assert!(row.contains("agreement sla revision"), "{}", run.output);
    assert!(
        row.contains("target by override bank-gold of agreement sla"),
        "{}",
        run.output
    );

    let explained = accord(
        &s,
        &w,
        dir.path(),
        &[
            "resolve",
            "bank-eu",
            "payments",
            "--explain",
            "--as-of",
            "2026-02-01T00:00:00Z",
        ],
    )
    .await;
    succeeded(&explained);
    assert!(
        explained
            .output
            .contains("ancestry, nearest first: bank-eu, bank"),
        "{}",
        explained.output
    );
    assert!(explained.output.contains("APPLIED"), "{}", explained.output);

    let json = accord(
        &s,
        &w,
        dir.path(),
        &["resolve", "bank", "payments", "-o", "json"],
    )
    .await;
    succeeded(&json);
    let value: serde_json::Value = serde_json::from_str(&json.output).unwrap();
    assert_eq!(value["objectives"][0]["objective"]["target"], 0.9995);
}

async fn a_refused_key_and_an_unreachable_server_say_so(s: TestServer) {
    let mut w = World::empty(&s, "acme").await;
    let dir = tempfile::tempdir().unwrap();
    w.admin_key = "not-a-key-the-server-knows-of-at-all".into();
    let refused = accord(&s, &w, dir.path(), &["get", "parties"]).await;
    assert_eq!(refused.status.code(), Some(4), "{}", refused.output);
    assert!(
        refused.output.contains("the server refused the API key"),
        "{}",
        refused.output
    );

    let gone = tokio::task::spawn_blocking({
        let dir = dir.path().to_path_buf();
        move || {
            let home = dir.display().to_string();
            Accord::start(
                &dir,
                &[
                    "get",
                    "parties",
                    "--server",
                    "http://127.0.0.1:1",
                    "--tenant",
                    "acme",
                ],
                &[
                    ("ACCORD_API_KEY", "k"),
                    ("HOME", &home),
                    ("XDG_CONFIG_HOME", &home),
                ],
            )
            .wait()
        }
    })
    .await
    .unwrap();
    assert_eq!(gone.status.code(), Some(3), "{}", gone.output);
    assert!(
        gone.output
            .contains("cannot reach the server at http://127.0.0.1:1"),
        "{}",
        gone.output
    );
}

async fn the_config_file_context_supplies_the_connection(s: TestServer) {
    let w = World::empty(&s, "acme").await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("accord")).unwrap();
    write(dir.path(), "key", &format!("{}\n", w.admin_key));
    write(
        dir.path(),
        "accord/config.toml",
        &format!(
            "current-context = \"broken\"\n\
             [contexts.broken]\nserver = \"http://127.0.0.1:1\"\n\
             [contexts.test]\nserver = \"http://127.0.0.1:{}\"\napi-key-file = \"{}\"\ntenant = \"acme\"\n",
            s.port,
            dir.path().join("key").display()
        ),
    );
    let run = |args: &'static [&'static str]| {
        let dir = dir.path().to_path_buf();
        tokio::task::spawn_blocking(move || {
            let home = dir.display().to_string();
            Accord::start(&dir, args, &[("HOME", &home), ("XDG_CONFIG_HOME", &home)]).wait()
        })
    };
    let chosen = run(&["get", "tenant", "acme", "--context", "test", "-o", "json"])
        .await
        .unwrap();
    succeeded(&chosen);
    assert!(
        chosen.output.contains("\"name\": \"tenants/acme\""),
        "{}",
        chosen.output
    );

    // The current context, unless a flag says otherwise: no key there.
    let current = run(&["get", "parties"]).await.unwrap();
    assert_eq!(current.status.code(), Some(2), "{}", current.output);
    assert!(current.output.contains("no API key"), "{}", current.output);

    let unknown = run(&["get", "parties", "--context", "nope"]).await.unwrap();
    assert_eq!(unknown.status.code(), Some(2), "{}", unknown.output);
    assert!(
        unknown.output.contains("no context \"nope\""),
        "{}",
        unknown.output
    );
}

/// The OpenSLO files of tests/data/openslo, copied into `dir`.
fn openslo_file(dir: &Path, name: &str) {
    let from = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/openslo")
        .join(name);
    std::fs::copy(from, dir.join(name)).unwrap();
}

async fn an_openslo_import_applies_as_a_draft_agreement(s: TestServer) {
    let w = World::empty(&s, "acme").await;
    let dir = tempfile::tempdir().unwrap();
    openslo_file(dir.path(), "web-shop.yaml");
    openslo_file(dir.path(), "budgeting-method--occurences-slo.yaml");
    write(
        dir.path(),
        "platform.yaml",
        "kind: Party\nid: platform\nspec:\n  kind: PARTY_KIND_PROVIDER\n",
    );
    succeeded(&accord(&s, &w, dir.path(), &["apply", "-f", "platform.yaml"]).await);

    let args = [
        "import",
        "openslo",
        "web-shop.yaml",
        "budgeting-method--occurences-slo.yaml",
        "--provider",
        "platform",
        "--effective-from",
        "2026-01-01T00:00:00Z",
        "-o",
        "registry.yaml",
    ];
    let import = accord(&s, &w, dir.path(), &args).await;
    succeeded(&import);
    for line in [
        "not mapped: budgeting-method--occurences-slo.yaml:12: SLI search-latency: metric queries",
        "warning: 3 part(s) of the OpenSLO files not mapped (listed above)",
        "converted: 1 service(s), 1 draft agreement(s) with 4 objective(s)",
    ] {
        assert!(
            import.output.contains(line),
            "no {line:?} in:\n{}",
            import.output
        );
    }

    let apply = accord(&s, &w, dir.path(), &["apply", "-f", "registry.yaml"]).await;
    succeeded(&apply);
    assert!(
        apply.output.contains("+ agreement web-shop-slo created"),
        "{}",
        apply.output
    );
    assert!(
        apply.output.contains("0 published"),
        "a draft: {}",
        apply.output
    );

    let table = accord(&s, &w, dir.path(), &["get", "agreements"]).await;
    succeeded(&table);
    let row = table
        .output
        .lines()
        .find(|l| l.starts_with("web-shop-slo "))
        .unwrap_or_else(|| panic!("{}", table.output));
    assert!(
        row.contains("SERVICE_LEVEL") && row.contains("DRAFT") && row.contains("web-shop"),
        "{}",
        table.output
    );
    let json = accord(
        &s,
        &w,
        dir.path(),
        &["get", "agreement", "web-shop-slo", "-o", "json"],
    )
    .await;
    succeeded(&json);
    let value: serde_json::Value = serde_json::from_str(&json.output).unwrap();
    assert_eq!(value["state"], "AGREEMENT_STATE_DRAFT");
    let objectives: Vec<(&str, &str, f64)> = value["objectives"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            (
                o["key"].as_str().unwrap(),
                o["kind"].as_str().unwrap(),
                o["target"].as_f64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        objectives,
        [
            ("checkout-contract", "OBJECTIVE_KIND_RATIO", 0.9999),
            ("checkout-internal", "OBJECTIVE_KIND_RATIO", 0.99995),
            ("home-page", "OBJECTIVE_KIND_TIMESLICE", 0.999),
            ("search-slo", "OBJECTIVE_KIND_THRESHOLD", 0.99),
        ]
    );
    assert_eq!(value["objectives"][3]["threshold"], 500.0);
    assert_eq!(value["objectives"][3]["comparison"], "COMPARISON_LESS_THAN");
    assert_eq!(
        value["objectives"][0]["window"]["calendar"]["period"],
        "CALENDAR_PERIOD_MONTH"
    );
    assert_eq!(value["objectives"][2]["slice"], "60s");

    // Importing and applying again changes nothing.
    succeeded(&accord(&s, &w, dir.path(), &args).await);
    let again = accord(&s, &w, dir.path(), &["apply", "-f", "registry.yaml"]).await;
    succeeded(&again);
    assert!(again.output.contains("no changes"), "{}", again.output);
}

/// `accord import openslo` in `dir` with `args` after it; no server.
fn import(dir: &Path, args: &[&str]) -> Ended {
    let mut all = vec!["import", "openslo"];
    all.extend_from_slice(args);
    Accord::start(dir, &all, &[]).wait()
}

#[test]
fn an_openslo_import_of_bad_input_says_where_and_exits_non_zero() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for name in [
        "budgeting-method--timeslices-slo.yaml",
        "budgeting-method--ratio-timeslices.yaml",
        "treat-low-traffic-as-equally-important--timeslices-slo.yaml",
        "web-shop.yaml",
    ] {
        openslo_file(d, name);
    }
    let cases: [(&[&str], i32, &str); 6] = [
        (
            &["budgeting-method--timeslices-slo.yaml", "--provider", "p"],
            1,
            "error: budgeting-method--timeslices-slo.yaml:27:17: SLO service-availability: a \
             calendar window of 1m (m is a minute; a month is M) cannot be represented",
        ),
        (
            &[
                "treat-low-traffic-as-equally-important--timeslices-slo.yaml",
                "--provider",
                "p",
            ],
            1,
            "error: treat-low-traffic-as-equally-important--timeslices-slo.yaml:28:20: SLO \
             service-availability: calendar startTime 2022-01-01 12:00:00 is not the start of a \
             week in America/New_York",
        ),
        (
            &["budgeting-method--ratio-timeslices.yaml", "--provider", "p"],
            1,
            "budgeting-method--ratio-timeslices.yaml:29: SLO main-page: budgetingMethod \
             RatioTimeslices (the average of the slices' ratios) has no Accord equivalent: \
             Accord's TIMESLICE objectives count good slices\n",
        ),
        (&["web-shop.yaml"], 2, "--provider <ID>"),
        (
            &["web-shop.yaml", "--provider", "Platform"],
            2,
            "error: --provider \"Platform\" is no party id",
        ),
        (
            &[
                "web-shop.yaml",
                "--provider",
                "p",
                "--effective-from",
                "tomorrow",
            ],
            2,
            "error: --effective-from \"tomorrow\" is no RFC 3339 time",
        ),
    ];
    for (args, code, message) in cases {
        let run = import(d, args);
        assert_eq!(run.status.code(), Some(code), "{args:?}: {}", run.output);
        assert!(run.output.contains(message), "{args:?}: {}", run.output);
        assert!(!run.output.contains("kind: Agreement"), "{}", run.output);
    }
    let nothing = import(
        d,
        &["budgeting-method--ratio-timeslices.yaml", "--provider", "p"],
    );
    assert!(
        nothing
            .output
            .contains("error: nothing could be mapped: no Service and no objective in the files"),
        "{}",
        nothing.output
    );
    write(d, "v2.yaml", "apiVersion: openslo/v2alpha\nkind: SLO\n");
    let v2 = import(d, &["v2.yaml", "--provider", "p"]);
    assert_eq!(v2.status.code(), Some(1), "{}", v2.output);
    assert!(
        v2.output.contains(
            "error: v2.yaml:1:13: apiVersion \"openslo/v2alpha\" is not read: expected openslo/v1"
        ),
        "{}",
        v2.output
    );
}

/// `examples/saas`, the README tour's registry, applies on each engine, and
/// a second apply changes nothing (`examples/saas/tour.sh` runs the whole
/// tour in CI).
async fn the_saas_example_applies_and_resolves(s: TestServer) {
    let w = World::empty(&s, "cloudline").await;
    let dir = tempfile::tempdir().unwrap();
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/saas");
    let first = accord(&s, &w, dir.path(), &["apply", "-f", example]).await;
    succeeded(&first);
    assert!(
        first
            .output
            .contains("applied: 22 created, 0 updated, 6 published, 0 unchanged"),
        "{}",
        first.output
    );
    let second = accord(&s, &w, dir.path(), &["apply", "-f", example]).await;
    succeeded(&second);
    assert!(
        second.output.contains("no changes: 22 unchanged"),
        "{}",
        second.output
    );
    let resolved = accord(
        &s,
        &w,
        dir.path(),
        &["resolve", "globex-logistics", "checkout", "-o", "json"],
    )
    .await;
    succeeded(&resolved);
    assert!(
        resolved.output.contains("0.9995") && resolved.output.contains("globex-enterprise"),
        "a department inherits its company's override:\n{}",
        resolved.output
    );
}

/// Resources beside `REGISTRY` that a later apply with `--prune` removes: a
/// customer, a service with a draft agreement on it, and an override of
/// `sla` for that customer.
const EXTRAS: &str = r#"
---
kind: Party
id: old-customer
spec:
  display_name: Old customer
  kind: PARTY_KIND_CUSTOMER
  parent: bank
---
kind: Service
id: legacy
spec:
  display_name: Legacy
  owner: platform
---
kind: Agreement
id: legacy-sla
spec:
  kind: AGREEMENT_KIND_SERVICE_LEVEL
  provider: platform
  services: [legacy]
  effective_from: "2026-01-01T00:00:00Z"
---
kind: Override
id: old-gold
agreement: sla
spec:
  consumer: old-customer
  effective_from: "2026-01-01T00:00:00Z"
  objective_patches:
    - key: availability
      target: 0.9999
"#;

/// `REGISTRY` without its customer contract, which is published.
fn registry_without_contract() -> String {
    let start = REGISTRY.find("kind: Agreement\nid: bank-contract").unwrap();
    let end = start + REGISTRY[start..].find("---\nkind: Override").unwrap();
    format!("{}{}", &REGISTRY[..start], &REGISTRY[end..])
}

async fn party_ids(w: &World) -> Vec<String> {
    let mut ids: Vec<String> = w
        .parties()
        .list_parties(pb::ListPartiesRequest {
            parent: w.tenant.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .parties
        .into_iter()
        .map(|p| p.name.rsplit('/').next().unwrap().to_string())
        .collect();
    ids.sort();
    ids
}

async fn held(w: &World) -> (Vec<String>, Vec<String>, Vec<String>, Vec<String>) {
    let last = |name: String| name.rsplit('/').next().unwrap().to_string();
    let services = w
        .services()
        .list_services(pb::ListServicesRequest {
            parent: w.tenant.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .services
        .into_iter()
        .map(|s| last(s.name))
        .collect();
    let agreements = w
        .agreements()
        .list_agreements(pb::ListAgreementsRequest {
            parent: w.tenant.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .agreements
        .into_iter()
        .map(|a| last(a.name))
        .collect();
    let overrides = w
        .agreements()
        .list_overrides(pb::ListOverridesRequest {
            parent: w.name("agreements", "sla"),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .overrides
        .into_iter()
        .map(|o| last(o.name))
        .collect();
    (party_ids(w).await, services, agreements, overrides)
}

async fn prune_deletes_what_the_files_no_longer_hold_and_keeps_what_is_published(s: TestServer) {
    let w = World::empty(&s, "acme").await;
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "registry.yaml", &format!("{REGISTRY}{EXTRAS}"));
    succeeded(&accord(&s, &w, dir.path(), &["apply", "-f", "registry.yaml"]).await);

    write(dir.path(), "registry.yaml", &registry_without_contract());
    let run = accord(
        &s,
        &w,
        dir.path(),
        &["apply", "-f", "registry.yaml", "--prune", "--yes"],
    )
    .await;
    succeeded(&run);
    let lines = [
        "- override old-gold (agreement sla) deleted",
        "- agreement legacy-sla deleted",
        "- service legacy deleted",
        "- party old-customer deleted",
        "! agreement bank-contract not deleted: it is ACTIVE, and a published agreement \
         cannot be deleted: terminate it instead",
        "applied: 0 created, 0 updated, 0 published, 6 unchanged, 4 deleted",
    ];
    let mut at = 0;
    for line in lines {
        let found = run.output[at..].find(line);
        assert!(
            found.is_some(),
            "no {line:?} after {at} in:\n{}",
            run.output
        );
        at += found.unwrap();
    }
    assert_eq!(
        held(&w).await,
        (
            vec!["bank".into(), "bank-eu".into(), "platform".into()],
            vec!["payments".into()],
            vec!["bank-contract".into(), "sla".into()],
            vec!["bank-gold".into()],
        )
    );

    let again = accord(
        &s,
        &w,
        dir.path(),
        &["apply", "-f", "registry.yaml", "--prune"],
    )
    .await;
    succeeded(&again);
    assert!(
        again.output.contains("no changes: 6 unchanged"),
        "{}",
        again.output
    );
}

async fn prune_of_only_parties_leaves_the_other_kinds_alone(s: TestServer) {
    let w = World::empty(&s, "acme").await;
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "registry.yaml", &format!("{REGISTRY}{EXTRAS}"));
    succeeded(&accord(&s, &w, dir.path(), &["apply", "-f", "registry.yaml"]).await);
    // Only parties, and not old-customer: an override still refers to it.
    write(
        dir.path(),
        "parties.yaml",
        "kind: Party\nid: platform\nspec:\n  display_name: Platform\n  kind: PROVIDER\n  \
         labels:\n    team: core\n",
    );
    let run = accord(
        &s,
        &w,
        dir.path(),
        &["apply", "-f", "parties.yaml", "--prune", "--yes"],
    )
    .await;
    assert_eq!(run.status.code(), Some(0), "{}", run.output);
    for line in [
        "! party old-customer not deleted: override old-gold (agreement sla) refers to it",
        "! party bank not deleted: ",
        "- party bank-eu deleted",
        "unchanged, 1 deleted",
    ] {
        assert!(run.output.contains(line), "no {line:?} in:\n{}", run.output);
    }
    let (parties, services, agreements, overrides) = held(&w).await;
    assert_eq!(parties, ["bank", "old-customer", "platform"]);
    assert_eq!(services, ["legacy", "payments"]);
    assert_eq!(agreements.len(), 3, "{agreements:?}");
    assert_eq!(overrides, ["bank-gold", "old-gold"]);
}

async fn prune_without_a_terminal_or_yes_is_refused_before_any_write(s: TestServer) {
    let w = World::empty(&s, "acme").await;
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "registry.yaml", &format!("{REGISTRY}{EXTRAS}"));
    succeeded(&accord(&s, &w, dir.path(), &["apply", "-f", "registry.yaml"]).await);
    let before = held(&w).await;

    let changed = REGISTRY.replace("display_name: Payments\n", "display_name: Pay\n");
    write(dir.path(), "registry.yaml", &changed);
    let run = accord(
        &s,
        &w,
        dir.path(),
        &["apply", "-f", "registry.yaml", "--prune"],
    )
    .await;
    assert_eq!(run.status.code(), Some(2), "{}", run.output);
    for line in [
        "error: apply --prune would delete 4 resources:",
        "  override old-gold (agreement sla)",
        "  party old-customer",
        "no terminal to confirm on; pass --yes to delete without asking, nothing was changed",
    ] {
        assert!(run.output.contains(line), "no {line:?} in:\n{}", run.output);
    }
    assert!(!run.output.contains("updated"), "{}", run.output);
    assert_eq!(held(&w).await, before);
    let payments = w
        .services()
        .get_service(pb::GetServiceRequest {
            name: w.name("services", "payments"),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(payments.display_name, "Payments", "not applied either");
}

async fn prune_in_a_dry_run_lists_and_deletes_nothing(s: TestServer) {
    let w = World::empty(&s, "acme").await;
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "registry.yaml", &format!("{REGISTRY}{EXTRAS}"));
    succeeded(&accord(&s, &w, dir.path(), &["apply", "-f", "registry.yaml"]).await);
    let before = held(&w).await;

    write(dir.path(), "registry.yaml", REGISTRY);
    let run = accord(
        &s,
        &w,
        dir.path(),
        &["apply", "-f", "registry.yaml", "--prune", "--dry-run"],
    )
    .await;
    succeeded(&run);
    for line in [
        "- override old-gold (agreement sla) would be deleted",
        "- agreement legacy-sla would be deleted",
        "- service legacy would be deleted",
        "- party old-customer would be deleted",
        "dry run, nothing changed: would create 0, update 0, publish 0, delete 4; 7 unchanged",
    ] {
        assert!(run.output.contains(line), "no {line:?} in:\n{}", run.output);
    }
    assert_eq!(held(&w).await, before);
}

async fn short_enum_names_apply_and_the_full_names_change_nothing(s: TestServer) {
    let w = World::empty(&s, "acme").await;
    let dir = tempfile::tempdir().unwrap();
    let short = REGISTRY
        .replace("PARTY_KIND_", "")
        .replace("AGREEMENT_KIND_", "")
        .replace("OBJECTIVE_KIND_", "")
        .replace("COMPARISON_", "")
        .replace("CALENDAR_PERIOD_", "")
        .replace("CLAUSE_KIND_", "");
    assert!(short.contains("kind: SERVICE_LEVEL\n"), "{short}");
    write(dir.path(), "short.yaml", &short);
    succeeded(&accord(&s, &w, dir.path(), &["apply", "-f", "short.yaml"]).await);
    let contract = agreement(&w, "bank-contract").await;
    assert_eq!(contract.kind(), pb::AgreementKind::Customer);
    assert_eq!(
        contract.objectives[0].comparison(),
        pb::Comparison::LessThanOrEqual
    );

    write(dir.path(), "registry.yaml", REGISTRY);
    let full = accord(&s, &w, dir.path(), &["apply", "-f", "registry.yaml"]).await;
    succeeded(&full);
    assert!(
        full.output.contains("no changes: 7 unchanged"),
        "{}",
        full.output
    );

    // Lower case is no short name; the error lists the accepted ones.
    write(
        dir.path(),
        "bad.yaml",
        "kind: Party\nid: x\nspec:\n  kind: customer\n",
    );
    let bad = accord(&s, &w, dir.path(), &["apply", "-f", "bad.yaml"]).await;
    assert_eq!(bad.status.code(), Some(1), "{}", bad.output);
    assert!(
        bad.output.contains(
            "bad.yaml:4:9: unrecognized enum value 'customer' for PartyKind: expected one of \
             PROVIDER, CUSTOMER, INTERNAL_UNIT, SUPPLIER, or in full as PARTY_KIND_PROVIDER"
        ),
        "{}",
        bad.output
    );
}

on_both_backends!(
    the_saas_example_applies_and_resolves,
    apply_twice_creates_then_changes_nothing,
    apply_of_a_changed_file_shows_the_diff_and_updates,
    a_draft_is_published_when_the_file_says_so_and_never_unpublished,
    dry_run_shows_the_changes_and_makes_none,
    yaml_errors_name_the_file_line_and_column,
    a_reference_to_a_missing_party_is_reported_before_any_write,
    what_the_server_refuses_is_shown_with_its_field_and_file,
    get_prints_each_format,
    resolve_prints_the_entitlement_with_its_provenance,
    a_refused_key_and_an_unreachable_server_say_so,
    the_config_file_context_supplies_the_connection,
    an_openslo_import_applies_as_a_draft_agreement,
    prune_deletes_what_the_files_no_longer_hold_and_keeps_what_is_published,
    prune_of_only_parties_leaves_the_other_kinds_alone,
    prune_without_a_terminal_or_yes_is_refused_before_any_write,
    prune_in_a_dry_run_lists_and_deletes_nothing,
    short_enum_names_apply_and_the_full_names_change_nothing,
);
