//! An API server in-process, small enough to read: objects kept as JSON by path, and the
//! requests the operator sent, in order. It answers what one reconcile asks: get (also of
//! metadata), list by label, create, server-side apply (of an object or its status), JSON and
//! merge patches, delete with a UID precondition. Resource versions and generations move as the
//! API server moves them: an apply that changes nothing keeps the object's resourceVersion.
//! There are no watches: the test feeds the operator's caches itself (controller::detached).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use http::{Request, Response, StatusCode};
use kube::client::Body;
use serde_json::{Value, json};

/// One request the operator sent.
#[derive(Debug, Clone)]
pub struct Sent {
    pub method: String,
    /// The object's path (`/apis/apps/v1/namespaces/shop/deployments/web`), with `/status` for a
    /// status write.
    pub path: String,
    pub query: String,
    pub content_type: String,
    pub body: Value,
}

impl Sent {
    pub fn is_write(&self) -> bool {
        self.method != "GET"
    }
}

#[derive(Default)]
struct State {
    objects: BTreeMap<String, Value>,
    sent: Vec<Sent>,
    version: u64,
    uids: u64,
}

/// The fake API server; clones share it.
#[derive(Clone, Default)]
pub struct FakeApi(Arc<Mutex<State>>);

/// Where a path points: an object (and maybe its subresource), or a collection.
struct Target {
    /// The object's path (without a subresource), or the collection's.
    key: String,
    subresource: Option<String>,
    collection: bool,
}

fn target(path: &str) -> Target {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let prefix = if parts.first() == Some(&"api") { 2 } else { 3 };
    let rest = parts.len().saturating_sub(prefix);
    match rest {
        5 => Target {
            key: parts[..parts.len() - 1].join("/"),
            subresource: parts.last().map(|s| (*s).to_owned()),
            collection: false,
        },
        _ => Target { key: parts.join("/"), subresource: None, collection: rest % 2 == 1 },
    }
}

fn status(code: StatusCode, reason: &str, message: &str) -> (StatusCode, Value) {
    let body = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "reason": reason, "message": message, "code": code.as_u16()});
    (code, body)
}

/// Whether `obj` has every `key=value` of a label selector (the operator selects by equality).
fn selected(obj: &Value, selector: Option<&str>) -> bool {
    let Some(selector) = selector else { return true };
    selector.split(',').filter(|s| !s.is_empty()).all(|pair| match pair.split_once('=') {
        Some((k, v)) => obj["metadata"]["labels"][k].as_str() == Some(v),
        None => !obj["metadata"]["labels"][pair].is_null(),
    })
}

fn query_param(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == name).then(|| percent_decode(v))
    })
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(b) => {
                        out.push(b);
                        i += 3;
                    }
                    None => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl State {
    fn next_version(&mut self) -> String {
        self.version += 1;
        self.version.to_string()
    }

    /// Server-set metadata of a new object at `key`.
    fn created(&mut self, mut obj: Value) -> Value {
        self.uids += 1;
        let version = self.next_version();
        let meta = &mut obj["metadata"];
        meta["uid"] = json!(format!("00000000-0000-0000-0000-{:012}", self.uids));
        meta["resourceVersion"] = json!(version);
        meta["creationTimestamp"] = json!("2026-12-06T00:00:00Z");
        if !obj["spec"].is_null() {
            obj["metadata"]["generation"] = json!(1);
        }
        obj
    }

    /// Stores `new` in place of `old`: a new resourceVersion only when something changed, a
    /// new generation only when the spec did.
    fn replaced(&mut self, old: &Value, mut new: Value) -> Value {
        for field in ["uid", "creationTimestamp", "resourceVersion", "generation"] {
            if !old["metadata"][field].is_null() {
                new["metadata"][field] = old["metadata"][field].clone();
            }
        }
        if new == *old {
            return new;
        }
        if new["spec"] != old["spec"] {
            let generation = old["metadata"]["generation"].as_i64().unwrap_or(0) + 1;
            new["metadata"]["generation"] = json!(generation);
        }
        new["metadata"]["resourceVersion"] = json!(self.next_version());
        new
    }

    fn answer(&mut self, sent: &Sent) -> (StatusCode, Value) {
        let t = target(&sent.path);
        let existing = self.objects.get(&t.key).cloned();
        match (sent.method.as_str(), t.collection) {
            ("GET", true) => {
                let selector = query_param(&sent.query, "labelSelector");
                let prefix = format!("{}/", t.key);
                let items: Vec<Value> = self
                    .objects
                    .iter()
                    .filter(|(k, v)| {
                        k.starts_with(&prefix) && !k[prefix.len()..].contains('/') && selected(v, selector.as_deref())
                    })
                    .map(|(_, v)| v.clone())
                    .collect();
                (
                    StatusCode::OK,
                    json!({"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": self.version.to_string()}, "items": items}),
                )
            }
            ("GET", false) => match existing {
                Some(obj) => (StatusCode::OK, obj),
                None => status(StatusCode::NOT_FOUND, "NotFound", &format!("{} not found", t.key)),
            },
            ("POST", true) => {
                let name = sent.body["metadata"]["name"].as_str().unwrap_or_default().to_owned();
                let key = format!("{}/{name}", t.key);
                if self.objects.contains_key(&key) {
                    return status(StatusCode::CONFLICT, "AlreadyExists", &format!("{key} already exists"));
                }
                let obj = self.created(sent.body.clone());
                self.objects.insert(key, obj.clone());
                (StatusCode::CREATED, obj)
            }
            ("PATCH", false) => self.patch(&t, existing, sent),
            ("DELETE", false) => match existing {
                None => status(StatusCode::NOT_FOUND, "NotFound", &format!("{} not found", t.key)),
                Some(obj) => {
                    let uid = &sent.body["preconditions"]["uid"];
                    if !uid.is_null() && *uid != obj["metadata"]["uid"] {
                        return status(StatusCode::CONFLICT, "Conflict", "precondition failed: UID");
                    }
                    self.objects.remove(&t.key);
                    (StatusCode::OK, obj)
                }
            },
            _ => status(StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed", &format!("{} {}", sent.method, sent.path)),
        }
    }

    fn patch(&mut self, t: &Target, existing: Option<Value>, sent: &Sent) -> (StatusCode, Value) {
        let apply = sent.content_type.starts_with("application/apply-patch");
        let new = match (existing.clone(), t.subresource.as_deref()) {
            (None, None) if apply => {
                let obj = self.created(sent.body.clone());
                self.objects.insert(t.key.clone(), obj.clone());
                return (StatusCode::CREATED, obj);
            }
            (None, _) => return status(StatusCode::NOT_FOUND, "NotFound", &format!("{} not found", t.key)),
            (Some(mut obj), Some("status")) => {
                obj["status"] = sent.body["status"].clone();
                obj
            }
            (Some(old), _) if apply => {
                // Server-side apply with force: each top-level field sent replaces the stored
                // one (the operator sends its whole spec); metadata is merged, so that the
                // finalizer's own apply of metadata alone keeps the rest.
                let mut obj = old.clone();
                for (field, value) in sent.body.as_object().into_iter().flatten() {
                    if field == "metadata" {
                        json_patch::merge(&mut obj["metadata"], value);
                    } else {
                        obj[field] = value.clone();
                    }
                }
                obj
            }
            (Some(mut obj), _) if sent.content_type.starts_with("application/json-patch") => {
                let Ok(ops) = serde_json::from_value::<json_patch::Patch>(sent.body.clone()) else {
                    return status(StatusCode::BAD_REQUEST, "BadRequest", "not a JSON patch");
                };
                if let Err(e) = json_patch::patch(&mut obj, &ops) {
                    return status(StatusCode::UNPROCESSABLE_ENTITY, "Invalid", &e.to_string());
                }
                obj
            }
            (Some(mut obj), _) => {
                let wanted = &sent.body["metadata"]["resourceVersion"];
                if !wanted.is_null() && *wanted != obj["metadata"]["resourceVersion"] {
                    return status(StatusCode::CONFLICT, "Conflict", "the object has been modified");
                }
                let mut body = sent.body.clone();
                body["metadata"].as_object_mut().map(|m| m.remove("resourceVersion"));
                json_patch::merge(&mut obj, &body);
                obj
            }
        };
        let Some(old) = existing else { unreachable!("handled above") };
        let stored = self.replaced(&old, new);
        self.objects.insert(t.key.clone(), stored.clone());
        (StatusCode::OK, stored)
    }
}

impl FakeApi {
    /// A client whose every request this fake answers.
    pub fn client(&self) -> kube::Client {
        let state = self.0.clone();
        let service = tower::service_fn(move |req: Request<Body>| {
            let state = state.clone();
            async move {
                let (parts, body) = req.into_parts();
                let bytes = body.collect_bytes().await.unwrap_or_default();
                let sent = Sent {
                    method: parts.method.to_string(),
                    path: parts.uri.path().to_owned(),
                    query: parts.uri.query().unwrap_or_default().to_owned(),
                    content_type: parts
                        .headers
                        .get(http::header::CONTENT_TYPE)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_owned(),
                    body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
                };
                let (code, answer) = match state.lock() {
                    Ok(mut s) => {
                        let answer = s.answer(&sent);
                        s.sent.push(sent);
                        answer
                    }
                    Err(_) => status(StatusCode::INTERNAL_SERVER_ERROR, "InternalError", "poisoned"),
                };
                let body = serde_json::to_vec(&answer).unwrap_or_default();
                Response::builder()
                    .status(code)
                    .header(http::header::CONTENT_TYPE, "application/json")
                    .body(Body::from(body))
                    .map_err(|e| Box::new(e) as Box<dyn std::error::Error + Send + Sync>)
            }
        });
        kube::Client::new(service, "default")
    }

    /// Stores `obj` at `path` as the API server would have it (server-set metadata added).
    pub fn put(&self, path: &str, obj: Value) -> Value {
        let path = path.trim_matches('/');
        let mut s = self.0.lock().expect("fake API state");
        let obj = match s.objects.get(path).cloned() {
            Some(old) => s.replaced(&old, obj),
            None => s.created(obj),
        };
        s.objects.insert(path.to_owned(), obj.clone());
        obj
    }

    /// The object at `path`.
    pub fn get(&self, path: &str) -> Option<Value> {
        let path = path.trim_matches('/');
        self.0.lock().expect("fake API state").objects.get(path).cloned()
    }

    /// Every object under `prefix`.
    pub fn under(&self, prefix: &str) -> Vec<(String, Value)> {
        let prefix = prefix.trim_matches('/');
        let s = self.0.lock().expect("fake API state");
        s.objects.iter().filter(|(k, _)| k.starts_with(prefix)).map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    /// The requests sent since the last call.
    pub fn take_sent(&self) -> Vec<Sent> {
        std::mem::take(&mut self.0.lock().expect("fake API state").sent)
    }
}
