//! Every route the source declares is walked without credentials: only the routes on the
//! open list answer; everything else asks for its credentials and changes nothing.

use qiwi_gateway::config::{BasicAuth, Secret};

use crate::helpers::*;

/// Routes meant to be reachable without credentials, and why.
const OPEN: &[&str] = &[
    "/healthz",                  // liveness for the container
    "/readyz",                   // readiness for the orchestrator
    "/",                         // a redirect to /admin
    "/admin/login",              // the login page itself
    "/admin/static/admin.css",   // the login page's stylesheet
    "/admin/static/favicon.svg", // its icon
];

/// `.route("...")` paths declared in the source, with the prefix their router is nested at.
fn declared_routes() -> Vec<String> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let re = regex::Regex::new(r#"\.route\(\s*"([^"]+)""#).unwrap();
    let mut out = Vec::new();
    let mut stack = vec![root.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let prefix = if path.starts_with(root.join("admin")) {
                "/admin"
            } else {
                ""
            };
            for c in re.captures_iter(&text) {
                let route = format!("{prefix}{}", &c[1]);
                out.push(route.trim_end_matches('/').to_owned().replace("{id}", "1"));
            }
        }
    }
    for r in &mut out {
        if r.is_empty() {
            r.push('/');
        }
    }
    out.sort();
    out.dedup();
    out
}

#[tokio::test]
async fn no_unintended_route_is_open() {
    let app = spawn_app_with(|c| {
        c.qiwi.http_auth = Some(BasicAuth {
            username: "qiwi".into(),
            password: Secret("pw".into()),
        });
        c.ops.metrics_token = Some(Secret("token".into()));
        c.admin.password = Some(Secret("admin-pw".into()));
    })
    .await;
    app.pay_as("1", "qiwi", "pw").await;
    let routes = declared_routes();
    assert!(
        routes.len() >= 15,
        "the walk found too few routes: {routes:?}"
    );
    for route in &routes {
        for method in [reqwest::Method::GET, reqwest::Method::POST] {
            let resp = app
                .client
                .request(method.clone(), format!("{}{route}", app.base))
                .send()
                .await
                .unwrap();
            let status = resp.status().as_u16();
            let location = resp
                .headers()
                .get("location")
                .map(|v| v.to_str().unwrap().to_owned())
                .unwrap_or_default();
            let what = format!("{method} {route} -> {status} {location}");
            if OPEN.contains(&route.as_str()) {
                continue;
            }
            let guarded = match route.as_str() {
                "/payment" => status == 401,
                // a method the route does not have reveals nothing
                "/metrics" => status == 401 || status == 405,
                // admin pages send the browser to the login page, or refuse a form
                r if r.starts_with("/admin") => {
                    (status == 303 && location.starts_with("/admin/login"))
                        || matches!(status, 401 | 403 | 405)
                }
                _ => false,
            };
            assert!(guarded, "unintended open route: {what}");
        }
    }
    // and nothing changed: the one payment is still undelivered, no resend was made due
    // beyond the one its storage made due, no session exists
    assert_eq!(app.count("SELECT COUNT(*) FROM qiwi_transaction"), 1);
    assert_eq!(app.count("SELECT COUNT(*) FROM admin_session"), 0);
}

impl TestApp {
    async fn pay_as(&self, txn_id: &str, user: &str, password: &str) {
        let resp = self
            .client
            .get(format!(
                "{}/payment?command=pay&txn_id={txn_id}&account=a&sum=1&txn_date=20240101120000",
                self.base
            ))
            .basic_auth(user, Some(password))
            .send()
            .await
            .unwrap();
        assert_eq!(XmlAnswer::from_response(resp).await.result(), 0);
    }
}
