//! kafkajs, a pure JavaScript client, against a real agent: topic admin, produce with acks=-1,
//! offsets, and a consumer group that reads everything once and commits.

mod common;

use std::path::Path;
use std::process::Command;

use common::Agent;

#[test]
fn kafkajs_admin_produce_offsets_and_group() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/node");
    assert!(
        dir.join("node_modules/kafkajs").is_dir(),
        "kafkajs is not installed: run `npm ci --prefix tests/node`"
    );
    let agent = Agent::start();
    let out = Command::new("node")
        .arg(dir.join("kafkajs_e2e.js"))
        .arg(agent.bootstrap())
        .output()
        .expect("node is not installed");
    println!("{}", String::from_utf8_lossy(&out.stdout));
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "kafkajs script failed");
}
