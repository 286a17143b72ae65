//! ListPlans and ListScenarios over gRPC against a store holding N national
//! plans and scenarios (generated national scenario, seed 1, 52 weeks, solved
//! once; its record stored N times under different ids, as a planner's
//! store fills over a season of what-ifs).
//!
//! `cargo bench --bench lists [-- RUNS [N]]` (default 30 runs, N = 20).
//! Prints the median and p95 of each call and the process's peak RSS.
use std::time::{Duration, Instant};

use examcap::config::Config;
use examcap::proto::plan_service_client::PlanServiceClient;
use examcap::proto::scenario_service_client::ScenarioServiceClient;
use examcap::proto::{ListPlansRequest, ListScenariosRequest};
use examcap::store::{PlanRecord, ScenarioRecord, SledStore, Store};
use examcap_solver::generate::{national, GenerateOptions};
use examcap_solver::{parse_scenario, plan_scenario, PlanOptions};

fn quantile(mut v: Vec<Duration>, q: f64) -> Duration {
    v.sort();
    let i = ((v.len() as f64 - 1.0) * q).round() as usize;
    v[i]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let runs: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(30);
    let n: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(20);

    let sc = national(&GenerateOptions {
        seed: 1,
        weeks: 52,
        ..GenerateOptions::default()
    });
    let json = serde_json::to_string(&sc).expect("serialises");
    let parsed = parse_scenario(json.as_bytes()).expect("generated scenario is valid");
    let plan = plan_scenario(&parsed, &PlanOptions::default(), &|_| {}).expect("solves");

    let dir = tempfile::tempdir().expect("temp dir");
    {
        let store = SledStore::open(dir.path()).expect("store opens");
        for i in 0..n {
            let id = format!("{}-{i:03}", parsed.content_hash());
            store
                .put_scenario(
                    &ScenarioRecord {
                        id: id.clone(),
                        name: format!("national {i}"),
                        start_week: "2027-W01".into(),
                        horizon_weeks: 52,
                        created_unix: i as i64,
                        drill: None,
                        scenario_json: json.clone(),
                    },
                    &[],
                )
                .expect("scenario stored");
            store
                .put_plan(
                    &PlanRecord {
                        id: format!("plan-{i:03}"),
                        scenario_id: id,
                        created_unix: i as i64,
                        drill: false,
                        plan: plan.clone(),
                    },
                    &[],
                )
                .expect("plan stored");
        }
    }
    // The same records as an examcap from before the heads stored them:
    // the first open writes their heads, later opens only check for them.
    let old = tempfile::tempdir().expect("temp dir");
    {
        let db = sled::open(old.path()).expect("sled opens");
        let from = SledStore::open_existing(dir.path());
        let from = from.expect("store reopens");
        let (st, pt) = (
            db.open_tree("scenarios").expect("tree"),
            db.open_tree("plans").expect("tree"),
        );
        for r in from.list_scenarios().expect("scenarios") {
            st.insert(r.id.as_bytes(), serde_json::to_vec(&r).expect("json"))
                .expect("insert");
        }
        for r in from.list_plans().expect("plans") {
            pt.insert(r.id.as_bytes(), serde_json::to_vec(&r).expect("json"))
                .expect("insert");
        }
        db.flush().expect("flush");
    }
    {
        let t = Instant::now();
        let db = sled::open(old.path()).expect("sled opens");
        for tree in ["scenarios", "plans"] {
            db.open_tree(tree).expect("tree");
        }
        println!(
            "store from before heads, sled's own open: {}",
            ms(t.elapsed())
        );
        drop(db);
        std::thread::sleep(Duration::from_millis(300));
    }
    for what in ["first open (writes the heads)", "second open", "third open"] {
        let t = Instant::now();
        let store = SledStore::open(old.path()).expect("store opens");
        let took = t.elapsed();
        assert_eq!(store.list_plan_heads().expect("heads").len(), n);
        println!("store from before heads, {what}: {}", ms(took));
        drop(store);
        std::thread::sleep(Duration::from_millis(300));
    }

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let config = Config {
            data_dir: dir.path().to_owned(),
            allow_unauthenticated: true,
            ..Config::default()
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(examcap::server::run(listener, config, async {
            let _ = stopped.await;
        }));
        let url = format!("http://{addr}");
        let channel = loop {
            match tonic::transport::Endpoint::from_shared(url.clone())
                .expect("url")
                .connect()
                .await
            {
                Ok(c) => break c,
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        };
        let mut plans = PlanServiceClient::new(channel.clone());
        let mut scenarios = ScenarioServiceClient::new(channel);
        let (mut lp, mut ls) = (Vec::new(), Vec::new());
        for _ in 0..runs {
            let t = Instant::now();
            let got = plans
                .list_plans(ListPlansRequest::default())
                .await
                .expect("ListPlans");
            lp.push(t.elapsed());
            assert_eq!(got.into_inner().plans.len(), n);
            let t = Instant::now();
            let got = scenarios
                .list_scenarios(ListScenariosRequest::default())
                .await
                .expect("ListScenarios");
            ls.push(t.elapsed());
            assert_eq!(got.into_inner().scenarios.len(), n);
        }
        println!("{n} national plans and scenarios in the store, {runs} calls each:");
        for (name, v) in [("ListPlans", lp), ("ListScenarios", ls)] {
            println!(
                "  {name:<14} median {}  p95 {}",
                ms(quantile(v.clone(), 0.5)),
                ms(quantile(v, 0.95))
            );
        }
        if let Some(rss) = peak_rss_mib() {
            println!("  peak RSS {rss:.0} MiB");
        }
        let _ = stop.send(());
        let _ = server.await;
    });
}
