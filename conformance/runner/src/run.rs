//! One case through one driver: names made unique before a step is sent, answers mapped back
//! (state ids, event ids, positions as ranks) and matched with the step's expectation.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};
use uuid::Uuid;

use crate::cases::{Case, Step};
use crate::driver::Driver;
use crate::servers::Target;

/// How one case ended for one binding on one target.
#[derive(Debug)]
pub struct Outcome {
    /// `None`: every step matched. Else what did not.
    pub failure: Option<String>,
    /// The answers, mapped back: what the bindings must agree on.
    pub answers: Vec<Value>,
}

/// The names of one case run.
struct Names {
    prefix: String,
    ids: HashMap<String, Uuid>,
    /// Every global position the case has seen, in order: a position's rank is its place here.
    positions: BTreeSet<u64>,
}

impl Names {
    fn state(&self, name: &str) -> String {
        match name.strip_prefix('$') {
            Some(rest) => format!("{}{rest}", self.prefix),
            None => name.to_owned(),
        }
    }

    fn position(&self, rank: &Value) -> Value {
        match rank.as_str().and_then(|r| r.strip_prefix('#')).and_then(|r| r.parse::<usize>().ok()) {
            Some(0) => json!(0),
            Some(k) => self.positions.iter().nth(k - 1).map_or(Value::Null, |p| json!(p)),
            None => rank.clone(),
        }
    }

    fn rank(&self, position: u64) -> Value {
        match self.positions.iter().position(|&p| p == position) {
            Some(i) => json!(format!("#{}", i + 1)),
            None => json!(format!("#?{position}")),
        }
    }

    /// The rank of the highest position of the case at or below `position` (`#0`: none).
    fn covered(&self, position: u64) -> Value {
        json!(format!("#{}", self.positions.range(..=position).count()))
    }

    /// The step's arguments as the driver gets them.
    fn args(&mut self, args: &Value) -> Value {
        let mut args = args.clone();
        let Some(map) = args.as_object_mut() else { return args };
        if let Some(Value::String(name)) = map.get("state") {
            let state = self.state(name);
            map.insert("state".into(), json!(state));
        }
        if let Some(Value::Array(states)) = map.get("states") {
            let states: Vec<Value> = states.iter().map(|s| json!(self.state(s.as_str().unwrap_or_default()))).collect();
            map.insert("states".into(), Value::Array(states));
        }
        if let Some(Value::String(prefix)) = map.get("prefix") {
            let prefix = if prefix == "$" { self.prefix.clone() } else { self.state(prefix) };
            map.insert("prefix".into(), json!(prefix));
        }
        for key in ["after", "until"] {
            if let Some(rank) = map.get(key) {
                let position = self.position(rank);
                map.insert(key.into(), position);
            }
        }
        let repeat = map.remove("repeat").and_then(|r| r.as_u64()).unwrap_or(1) as usize;
        if let Some(Value::Array(events)) = map.get_mut("events") {
            *events = events.iter().cycle().take(events.len() * repeat).cloned().collect();
            for event in events.iter_mut() {
                self.event_id(event);
            }
        }
        if let Some(Value::Array(parts)) = map.get_mut("parts") {
            let parts: Vec<Value> = parts.clone();
            let parts = parts.iter().map(|part| self.args(part)).collect();
            map.insert("parts".into(), Value::Array(parts));
        }
        args
    }

    fn event_id(&mut self, event: &mut Value) {
        if let Some(Value::String(name)) = event.get("id") {
            let id = *self.ids.entry(name.clone()).or_insert_with(Uuid::new_v4);
            event["id"] = json!(id.to_string());
        }
    }

    /// Notes every position an answer holds, so ranks cover them.
    fn see(&mut self, value: &Value) {
        match value {
            Value::Object(map) => {
                for (key, value) in map {
                    match (key.as_str(), value) {
                        ("position" | "last_position", Value::Number(n)) => {
                            self.positions.extend(n.as_u64());
                        }
                        ("positions", Value::Array(all)) => self.positions.extend(all.iter().filter_map(Value::as_u64)),
                        _ => self.see(value),
                    }
                }
            }
            Value::Array(all) => all.iter().for_each(|v| self.see(v)),
            _ => {}
        }
    }

    /// The answer with names and positions mapped back.
    fn back(&self, value: &Value) -> Value {
        match value {
            Value::Object(map) => {
                let mut out = Map::new();
                for (key, value) in map {
                    let mapped = match (key.as_str(), value) {
                        ("position" | "last_position", Value::Number(n)) => {
                            n.as_u64().map_or(Value::Null, |p| self.rank(p))
                        }
                        ("positions", Value::Array(all)) => {
                            Value::Array(all.iter().filter_map(Value::as_u64).map(|p| self.rank(p)).collect())
                        }
                        ("settled_position", Value::Number(n)) => self.covered(n.as_u64().unwrap_or(0)),
                        ("state", Value::String(state)) => match state.strip_prefix(&self.prefix) {
                            Some(rest) => json!(format!("${rest}")),
                            None => value.clone(),
                        },
                        ("id", Value::String(id)) => {
                            let name =
                                self.ids.iter().find(|(_, known)| known.to_string() == *id).map(|(n, _)| n.clone());
                            json!(name.unwrap_or_else(|| "$new".to_owned()))
                        }
                        _ => self.back(value),
                    };
                    out.insert(key.clone(), mapped);
                }
                Value::Object(out)
            }
            Value::Array(all) => Value::Array(all.iter().map(|v| self.back(v)).collect()),
            other => other.clone(),
        }
    }
}

/// Whether `answer` matches `expected`: equal, except that `"$any"` matches anything and an
/// expected object needs only its own keys. Answers the first difference.
pub fn matches(expected: &Value, answer: &Value, at: &str) -> Result<(), String> {
    match (expected, answer) {
        (Value::String(any), _) if any == "$any" => Ok(()),
        (Value::Object(want), Value::Object(got)) => want.iter().try_for_each(|(key, want)| {
            let got = got.get(key).unwrap_or(&Value::Null);
            matches(want, got, &format!("{at}.{key}"))
        }),
        (Value::Array(want), Value::Array(got)) => {
            if want.len() != got.len() {
                return Err(format!("{at}: {} items expected, {} answered: {answer}", want.len(), got.len()));
            }
            want.iter().zip(got).enumerate().try_for_each(|(i, (w, g))| matches(w, g, &format!("{at}[{i}]")))
        }
        _ if expected == answer => Ok(()),
        _ => Err(format!("{at}: expected {expected}, answered {answer}")),
    }
}

/// The answer with what the expectation leaves open (`"$any"`) left out: bindings need not
/// agree there (a log's event count counts every run's events), nor on an error's message.
fn masked(expected: &Value, answer: &Value) -> Value {
    match (expected, answer) {
        (Value::String(any), _) if any == "$any" => json!("$any"),
        (_, Value::Object(got)) if got.contains_key("message") => {
            let mut got = got.clone();
            got.remove("message");
            masked(expected, &Value::Object(got))
        }
        (Value::Object(want), Value::Object(got)) => Value::Object(
            got.iter()
                .map(|(key, value)| {
                    (key.clone(), want.get(key).map_or_else(|| masked(&Value::Null, value), |w| masked(w, value)))
                })
                .collect(),
        ),
        (Value::Array(want), Value::Array(got)) if want.len() == got.len() => {
            Value::Array(want.iter().zip(got).map(|(w, g)| masked(w, g)).collect())
        }
        _ => answer.clone(),
    }
}

/// A read's events summed up (the `summary` argument): how many, the first and last versions,
/// and whether versions rose by one each time.
fn summary(answer: &Value) -> Value {
    let Some(events) = answer.pointer("/ok/events").and_then(Value::as_array) else { return answer.clone() };
    let versions: Vec<u64> = events.iter().filter_map(|e| e["version"].as_u64()).collect();
    let in_order = versions.windows(2).all(|w| w[1] == w[0] + 1);
    json!({ "ok": { "count": events.len(), "first_version": versions.first(), "last_version": versions.last(), "in_order": in_order } })
}

/// Where a case runs: the target, and the binding whose driver runs it.
pub struct Place<'a> {
    pub target: &'a Target,
    pub binding: &'a str,
}

/// The steps the runner performs itself, between the driver's: `switch_server` connects the
/// driver to the target's other server (embedded: a new client on the same file);
/// `stop_backend` and `start_backend` stop and start the target's backend; `lose_next_answer`
/// makes the proxy in front of the first server lose the next call's answer and cut the
/// connection (the server did the work), `answer_was_lost` checks that it did;
/// `restart_server` stops the first server, keeps it away for `down_ms` and starts it again.
fn runner_step(driver: &mut Driver, place: &Place<'_>, step: &Step) -> Option<Result<Value, String>> {
    let done = match step.op.as_str() {
        "switch_server" => connect(driver, place, driver.server + 1),
        "lose_next_answer" => place.target.lose_next_answer(driver.server),
        "answer_was_lost" => place.target.answer_was_lost(),
        "stop_backend" => place.target.backend(false),
        "start_backend" => place.target.backend(true),
        "restart_server" => {
            let down = Duration::from_millis(step.args["down_ms"].as_u64().unwrap_or(0));
            place.target.restart_server(down)
        }
        _ => return None,
    };
    Some(done.map(|()| json!({ "ok": {} })))
}

/// Connects the driver to server `server` of the target.
pub fn connect(driver: &mut Driver, place: &Place<'_>, server: usize) -> Result<(), String> {
    let answer = driver.call("connect", &place.target.connect(place.binding, server))?;
    match answer.get("ok") {
        Some(_) => {
            driver.server = server % 2;
            Ok(())
        }
        None => Err(format!("the driver did not connect: {answer}")),
    }
}

/// Runs one case to its end or its first mismatch.
pub fn run(driver: &mut Driver, place: &Place<'_>, case: &Case, prefix: String) -> Outcome {
    let mut names = Names { prefix, ids: HashMap::new(), positions: BTreeSet::new() };
    let mut answers = Vec::new();
    if driver.server != 0
        && let Err(failure) = connect(driver, place, 0)
    {
        return Outcome { failure: Some(failure), answers };
    }
    for (index, step) in case.steps.iter().enumerate() {
        for _ in 0..step.times {
            let answer = match runner_step(driver, place, step) {
                Some(done) => done,
                None => run_step(driver, &mut names, step),
            };
            match answer {
                Ok(answer) => {
                    let checked = matches(&step.expect, &answer, "");
                    answers.push(masked(&step.expect, &answer));
                    if let Err(difference) = checked {
                        let mut failure = format!("step {} ({}): {difference}", index + 1, step.op);
                        if let Some(error) = answer.get("error") {
                            failure.push_str(&format!(" (the error: {error})"));
                        }
                        return Outcome { failure: Some(failure), answers };
                    }
                }
                Err(failure) => {
                    return Outcome { failure: Some(format!("step {} ({}): {failure}", index + 1, step.op)), answers };
                }
            }
        }
    }
    Outcome { failure: None, answers }
}

fn run_step(driver: &mut Driver, names: &mut Names, step: &Step) -> Result<Value, String> {
    let mut args = names.args(&step.args);
    let summarize = args.as_object_mut().and_then(|a| a.remove("summary")).is_some();
    let covers = args.as_object_mut().and_then(|a| a.remove("until_covers"));
    let deadline = Instant::now() + Duration::from_secs(if step.retry_unavailable { 30 } else { 10 });
    loop {
        let answer = driver.call(&step.op, &args)?;
        let code = answer.pointer("/error/code").and_then(Value::as_str);
        if step.retry_unavailable && code == Some("UNAVAILABLE") && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
            continue;
        }
        if let Some(Value::Object(error)) = answer.get("error")
            && error.get("code").and_then(Value::as_str) == Some("DRIVER")
        {
            return Err(format!("the driver could not run the step: {}", answer["error"]));
        }
        names.see(&answer);
        let mapped = names.back(&answer);
        let mapped = if summarize { summary(&mapped) } else { mapped };
        // A log head polled until it covers a position (the settled position may lag a moment
        // behind an acknowledged append on PostgreSQL).
        if let Some(rank) = &covers {
            let covered = mapped.pointer("/ok/settled_position").and_then(Value::as_str).unwrap_or("#0");
            let rank_of = |r: &str| r.trim_start_matches('#').parse::<usize>().unwrap_or(0);
            if rank_of(covered) < rank_of(rank.as_str().unwrap_or("#0")) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
                continue;
            }
        }
        return Ok(mapped);
    }
}
