//! The platform team's gMSA policy, offline: how the annotations on GMSACredentialSpecs and
//! Namespaces are read, and what a refusal tells the platform team to do.

use std::collections::BTreeMap;

use winapp_operator::gmsa_policy::{
    ALLOWED_NAMESPACES, Decision, GMSA_ACCOUNTS, account_allowed, entries, existing_credspec, generated_credspec,
    namespace_allowed,
};

fn annotations(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

#[test]
fn the_annotation_names_are_the_documented_ones() {
    assert_eq!(ALLOWED_NAMESPACES, "winapp.dev/allowed-namespaces");
    assert_eq!(GMSA_ACCOUNTS, "winapp.dev/gmsa-accounts");
}

#[test]
fn entries_are_comma_separated_trimmed_and_never_empty() {
    assert_eq!(entries("team-a,team-b").collect::<Vec<_>>(), ["team-a", "team-b"]);
    assert_eq!(entries("  team-a ,\tteam-b\n, ,,").collect::<Vec<_>>(), ["team-a", "team-b"]);
    assert_eq!(entries("").count(), 0);
    assert_eq!(entries(" , ").count(), 0);
}

#[test]
fn namespaces_are_allowed_by_name_or_star() {
    assert!(namespace_allowed(Some("team-a,team-b"), "team-a"));
    assert!(namespace_allowed(Some("team-a,team-b"), "team-b"));
    assert!(namespace_allowed(Some(" team-a , team-b "), "team-b"), "whitespace around entries is ignored");
    assert!(namespace_allowed(Some("*"), "anything"));
    assert!(namespace_allowed(Some("team-a, *"), "team-z"));
    assert!(!namespace_allowed(None, "team-a"), "no annotation allows nothing");
    assert!(!namespace_allowed(Some(""), "team-a"), "an empty annotation allows nothing");
    assert!(!namespace_allowed(Some("team-a,team-b"), "team-c"));
    assert!(!namespace_allowed(Some("team"), "team-a"), "no prefix matching");
    assert!(!namespace_allowed(Some("team-a"), "team"), "no prefix matching");
    assert!(!namespace_allowed(Some("team-*"), "team-a"), "only a lone * is a wildcard");
    assert!(!namespace_allowed(Some("team-a team-b"), "team-a"), "entries are separated by commas only");
}

#[test]
fn accounts_are_allowed_case_insensitively_with_or_without_the_dollar() {
    assert!(account_allowed(Some("WebApp01,Svc02"), "WebApp01"));
    assert!(account_allowed(Some("WebApp01,Svc02"), "webapp01"), "Active Directory names are case-insensitive");
    assert!(account_allowed(Some("webapp01"), "WEBAPP01"));
    assert!(account_allowed(Some(" WebApp01 , Svc02 "), "svc02"), "whitespace around entries is ignored");
    assert!(account_allowed(Some("WebApp01$"), "WebApp01"), "the sAMAccountName's $ may be written");
    assert!(account_allowed(Some("*"), "Anything"));
    assert!(!account_allowed(None, "WebApp01"), "no annotation allows nothing");
    assert!(!account_allowed(Some(""), "WebApp01"));
    assert!(!account_allowed(Some("WebApp01"), "WebApp02"));
    assert!(!account_allowed(Some("WebApp"), "WebApp01"), "no prefix matching");
    assert!(!account_allowed(Some("Web*"), "WebApp01"), "only a lone * is a wildcard");
}

#[test]
fn an_existing_credspec_is_allowed_only_for_the_namespaces_it_names() {
    let listed = annotations(&[(ALLOWED_NAMESPACES, "team-a, team-b")]);
    assert_eq!(existing_credspec("webapp01", &listed, "team-b"), Decision::Allowed);
    assert!(existing_credspec("webapp01", &annotations(&[(ALLOWED_NAMESPACES, "*")]), "x").is_allowed());

    // Another annotation key, or the key on the wrong object, allows nothing.
    let other = annotations(&[("winapp.dev/allowed-namespace", "team-a"), (GMSA_ACCOUNTS, "*")]);
    assert!(!existing_credspec("webapp01", &other, "team-a").is_allowed());

    let Decision::NotAllowed(msg) = existing_credspec("webapp01", &annotations(&[]), "team-c") else {
        panic!("allowed without the annotation");
    };
    for words in [
        "GMSACredentialSpec webapp01",
        "namespace team-c",
        "winapp.dev/allowed-namespaces",
        "platform team",
        "no such annotation",
    ] {
        assert!(msg.contains(words), "the message should say {words:?}: {msg}");
    }
    let Decision::NotAllowed(msg) = existing_credspec("webapp01", &listed, "team-c") else {
        panic!("allowed while not listed");
    };
    assert!(msg.contains("add team-c") && msg.contains("\"team-a, team-b\""), "names what is there: {msg}");
}

#[test]
fn a_generated_credspec_is_allowed_only_for_the_accounts_its_namespace_names() {
    let ns = annotations(&[(GMSA_ACCOUNTS, "PayrollSvc, ReportsSvc")]);
    assert!(generated_credspec("payrollsvc", "team-a", &ns).is_allowed());
    assert!(generated_credspec("ReportsSvc", "team-a", &ns).is_allowed());
    assert!(generated_credspec("Anyone", "team-a", &annotations(&[(GMSA_ACCOUNTS, "*")])).is_allowed());
    // The credspec annotation on a namespace allows no account.
    assert!(!generated_credspec("PayrollSvc", "team-a", &annotations(&[(ALLOWED_NAMESPACES, "*")])).is_allowed());

    let Decision::NotAllowed(msg) = generated_credspec("DomainAdmin", "team-a", &ns) else {
        panic!("an account not listed is allowed");
    };
    for words in
        ["DomainAdmin", "Namespace team-a", "winapp.dev/gmsa-accounts", "platform team", "\"PayrollSvc, ReportsSvc\""]
    {
        assert!(msg.contains(words), "the message should say {words:?}: {msg}");
    }
    let Decision::NotAllowed(msg) = generated_credspec("PayrollSvc", "team-a", &annotations(&[])) else {
        panic!("allowed without the annotation");
    };
    assert!(msg.contains("no such annotation"), "{msg}");
}

#[test]
fn a_long_annotation_is_quoted_short() {
    let long = vec!["team"; 500].join(",");
    let Decision::NotAllowed(msg) = existing_credspec("c", &annotations(&[(ALLOWED_NAMESPACES, &long)]), "x") else {
        panic!("allowed");
    };
    assert!(msg.len() < 800, "{} bytes", msg.len());
}
