//! The figures, printed: the progress summary and the table row.

use super::*;

pub(crate) fn report(args: &Args, f: &Figures, p: &Phases) {
    let n = args.tasks as f64;
    // Only a run whose scheduler placed each task once has a rate to all
    // placed; with replacements (nodes marked down) there is none.
    let once = p.scheduler.count == args.tasks;
    let placed_at = p.scheduler.last.filter(|_| once);
    let placements = placed_at.map(|t| n / t);
    println!("\nscheduler: {}", p.scheduler.show("tasks assigned"));
    println!("allocator: {}", p.allocator.show("changes"));
    println!("orchestrator: {}", p.orchestrator.show("changes"));
    println!(
        "raft: {} 'loop was busy', {} 'ticks were late', {} 'leading: starting the orchestrator' lines since the create",
        p.raft_busy, p.ticks_late, p.elections
    );
    println!(
        "dispatcher: {} nodes marked down after missing heartbeats, {} sessions opened since the create; allocator: at most {} nodes without an ingress address",
        p.marked_down, p.sessions, p.no_ingress
    );
    println!(
        "workers: {} heartbeats sent during the run, {} failed",
        f.beats, f.beat_failures
    );
    if f.running.is_none() {
        println!(
            "NOT CONVERGED after {:.0} s: last poll {} held by workers, {} running",
            f.ended.as_secs_f64(),
            f.last_held,
            f.last_running
                .map(|r| r.to_string())
                .unwrap_or_else(|| "?".into())
        );
    }
    println!(
        "workers joined in {:.1} s, all sessions open and Ready at {:.1} s; service create returned in {:.2} s; {} polls",
        f.joined_in.as_secs_f64(),
        f.sessions_in.as_secs_f64(),
        f.created.as_secs_f64(),
        f.polls
    );
    println!(
        "leader node-{} (after: {}); followers' CPU {}; this process ({} workers, polling) CPU {:.1} s; leader RSS before {} MB, highest polled {} MB",
        f.leader,
        f.leader_after
            .map(|l| format!("node-{l}"))
            .unwrap_or_else(|| "none".into()),
        if args.managers > 1 {
            format!("{:.1} s", f.followers_cpu)
        } else {
            "n/a".into()
        },
        args.workers,
        f.bench_cpu,
        f.leader_rss_before_kb / 1024,
        f.leader_rss_max_kb / 1024,
    );
    println!(
        "load average: {} before, {} after",
        f.load_before, f.load_after
    );
    println!(
        "\n| managers | workers | tasks | placements/s | all placed | held by workers | all running | leader CPU s | leader peak RSS | leader changes | assignment bytes/task |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    println!(
        "| {} | {} | {} | {} | {} | {} | {} | {:.1} | {} MB | {} | {:.0} |",
        args.managers,
        args.workers,
        args.tasks,
        placements
            .map(|p| format!("{p:.0}"))
            .unwrap_or_else(|| format!("— ({} assignments)", p.scheduler.count)),
        placed_at
            .map(|t| format!("{t:.1} s"))
            .unwrap_or_else(|| "—".into()),
        f.delivered
            .map(|d| format!("{:.1} s", d.as_secs_f64()))
            .unwrap_or_else(|| "—".into()),
        f.running
            .map(|r| format!("{:.1} s", r.as_secs_f64()))
            .unwrap_or_else(|| format!("not in {:.0} s", f.ended.as_secs_f64())),
        f.leader_cpu,
        f.leader_hwm_kb / 1024,
        f.leader_changes,
        f.assignment_bytes / n,
    );
    println!(
        "\nreference: Nomad C1M 3,750 placements/s (published); swarmkit's scheduler alone 61–69 s for 100,000 tasks on 1,000 nodes on this machine kind (~1,450–1,640 placements/s)"
    );
    println!(
        "goals: >= 20,000 placements/s: {}; 0 leader changes: {}",
        if placements.is_some_and(|p| p >= 20_000.0) {
            "met"
        } else {
            "NOT met"
        },
        if f.leader_changes == 0.0 && f.leader_after == Some(f.leader) {
            "met"
        } else {
            "NOT met"
        }
    );
}
