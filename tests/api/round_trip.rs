//! What a client stores comes back bit for bit: targets are doubles, kept as
//! JSON in the store, and must survive the trip on both engines.

use crate::on_both_backends;
use crate::support::*;

async fn targets_come_back_exactly_as_sent(s: TestServer) {
    let w = World::new(&s, "acme").await;
    // Doubles whose shortest decimal form needs all 17 digits, or sits
    // next to a rounder one: a parser that is not exact reads them back
    // one step off (0.9299999999999999 came back as 0.93).
    let targets = [
        0.9299999999999999,
        0.1 + 0.2,
        0.999_999_999_999_999_9,
        1e-300,
    ];
    for (i, target) in targets.into_iter().enumerate() {
        let created = w
            .draft(&format!("sla-{i}"), w.sla(vec![availability(target)]))
            .await;
        let read = w.get_agreement(&created.name).await;
        assert_eq!(
            read.objectives[0].target.to_bits(),
            target.to_bits(),
            "sent {target:e}, read back {:e}",
            read.objectives[0].target
        );
    }
}

on_both_backends!(targets_come_back_exactly_as_sent);
