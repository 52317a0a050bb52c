//! The platform team's gMSA policy, offline: how the annotations on GMSACredentialSpecs and
//! Namespaces are read, and what a refusal tells the platform team to do.

use std::collections::BTreeMap;

use winapp_operator::api::{CredentialSpec, GmsaDomain, HostAccount};
use winapp_operator::gmsa_policy::{
    ALLOWED_NAMESPACES, AccountEntry, Decision, GMSA_ACCOUNTS, GMSA_CCG_PLUGINS, account_allowed, entries,
    existing_credspec, generated_credspec, namespace_allowed, plugin_allowed,
};

/// A generated credspec of `account` in the domain contoso.com / CONTOSO.
fn contoso(account: &str) -> CredentialSpec {
    in_domain(account, "contoso.com", "CONTOSO")
}

fn in_domain(account: &str, dns_name: &str, net_bios_name: &str) -> CredentialSpec {
    CredentialSpec {
        account: account.into(),
        domain: GmsaDomain {
            dns_name: dns_name.into(),
            dns_tree_name: None,
            net_bios_name: net_bios_name.into(),
            sid: "S-1-5-21-1-2-3".into(),
            guid: "244818ae-87ac-4fcd-92ec-e79e5252348a".into(),
        },
        host_account: None,
    }
}

const KV_PLUGIN: &str = "{CCC2A336-D7F3-4818-A213-272B7924213E}";

fn with_plugin(mut spec: CredentialSpec, input: &str) -> CredentialSpec {
    spec.host_account =
        Some(HostAccount { plugin_guid: KV_PLUGIN.into(), plugin_input: input.into(), portable_ccg_version: None });
    spec
}

fn annotations(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

#[test]
fn the_annotation_names_are_the_documented_ones() {
    assert_eq!(ALLOWED_NAMESPACES, "winapp.dev/allowed-namespaces");
    assert_eq!(GMSA_ACCOUNTS, "winapp.dev/gmsa-accounts");
    assert_eq!(GMSA_CCG_PLUGINS, "winapp.dev/gmsa-ccg-plugins");
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
    // Entries without a domain (the form of earlier versions) still allow, with a warning.
    let ns = annotations(&[(GMSA_ACCOUNTS, "PayrollSvc, ReportsSvc")]);
    assert!(generated_credspec(&contoso("payrollsvc"), "team-a", &ns).is_allowed());
    assert!(generated_credspec(&contoso("ReportsSvc"), "team-a", &ns).is_allowed());
    assert!(
        matches!(generated_credspec(&contoso("ReportsSvc"), "team-a", &ns), Decision::AllowedWithWarning(w) if w.contains(r"CONTOSO\ReportsSvc"))
    );
    assert_eq!(
        generated_credspec(&contoso("Anyone"), "team-a", &annotations(&[(GMSA_ACCOUNTS, "*")])),
        Decision::Allowed
    );
    // The credspec annotation on a namespace allows no account.
    assert!(
        !generated_credspec(&contoso("PayrollSvc"), "team-a", &annotations(&[(ALLOWED_NAMESPACES, "*")])).is_allowed()
    );

    let Decision::NotAllowed(msg) = generated_credspec(&contoso("DomainAdmin"), "team-a", &ns) else {
        panic!("an account not listed is allowed");
    };
    for words in [
        "DomainAdmin",
        "Namespace team-a",
        "winapp.dev/gmsa-accounts",
        "platform team",
        "\"PayrollSvc, ReportsSvc\"",
        r"CONTOSO\DomainAdmin",
    ] {
        assert!(msg.contains(words), "the message should say {words:?}: {msg}");
    }
    let Decision::NotAllowed(msg) = generated_credspec(&contoso("PayrollSvc"), "team-a", &annotations(&[])) else {
        panic!("allowed without the annotation");
    };
    assert!(msg.contains("no such annotation"), "{msg}");
}

#[test]
fn an_identity_entry_pins_the_domain_by_dns_or_netbios_name() {
    for entry in [r"CONTOSO\PayrollSvc", r"contoso.com\payrollsvc$", r"contoso\*", "*"] {
        let ns = annotations(&[(GMSA_ACCOUNTS, entry)]);
        assert_eq!(generated_credspec(&contoso("PayrollSvc"), "team-a", &ns), Decision::Allowed, "{entry}");
    }
    // The same account name in another domain is another identity.
    let ns = annotations(&[(GMSA_ACCOUNTS, r"CONTOSO\PayrollSvc, contoso.com\Svc02")]);
    for other in [in_domain("PayrollSvc", "fabrikam.com", "FABRIKAM"), in_domain("Svc02", "fabrikam.com", "FABRIKAM")] {
        let Decision::NotAllowed(msg) = generated_credspec(&other, "team-a", &ns) else {
            panic!("another domain's {} is allowed", other.account);
        };
        assert!(msg.contains(&format!(r"FABRIKAM\{}", other.account)), "{msg}");
    }
    assert_eq!(AccountEntry::parse(r"CONTOSO\*"), AccountEntry { domain: Some("CONTOSO".into()), account: None });
    assert_eq!(AccountEntry::parse("Svc"), AccountEntry { domain: None, account: Some("Svc".into()) });
}

#[test]
fn portable_ccg_plugin_settings_need_the_namespaces_line() {
    let input = "ObjectId=1111;SecretUri=https://team-a-kv.vault.azure.net/secrets/gmsa";
    let spec = with_plugin(contoso("PayrollSvc"), input);
    let accounts = (GMSA_ACCOUNTS, r"CONTOSO\PayrollSvc");
    let Decision::NotAllowed(msg) = generated_credspec(&spec, "team-a", &annotations(&[accounts])) else {
        panic!("plugin settings allowed without the annotation");
    };
    for words in [GMSA_CCG_PLUGINS, "Namespace team-a", KV_PLUGIN, "team-a-kv", "no such annotation"] {
        assert!(msg.contains(words), "the message should say {words:?}: {msg}");
    }
    let exact = format!("{KV_PLUGIN} {input}");
    let prefix = "{ccc2a336-d7f3-4818-a213-272b7924213e} ObjectId=1111;SecretUri=https://team-a-kv.vault.azure.net/*";
    for lines in [exact.as_str(), prefix, "*", &format!("{{other}} x\n{exact}\n")] {
        let ns = annotations(&[accounts, (GMSA_CCG_PLUGINS, lines)]);
        assert_eq!(generated_credspec(&spec, "team-a", &ns), Decision::Allowed, "{lines}");
    }
    // Another team's key vault, or another plugin, is not.
    let theirs =
        with_plugin(contoso("PayrollSvc"), "ObjectId=2222;SecretUri=https://team-b-kv.vault.azure.net/secrets/gmsa");
    let ns = annotations(&[accounts, (GMSA_CCG_PLUGINS, prefix)]);
    assert!(!generated_credspec(&theirs, "team-a", &ns).is_allowed());
    assert!(!plugin_allowed(Some(&exact), "{00000000-0000-0000-0000-000000000000}", input));
    assert!(!plugin_allowed(Some(""), KV_PLUGIN, input));
    assert!(!plugin_allowed(None, KV_PLUGIN, input));
}

#[test]
fn a_long_annotation_is_quoted_short() {
    let long = vec!["team"; 500].join(",");
    let Decision::NotAllowed(msg) = existing_credspec("c", &annotations(&[(ALLOWED_NAMESPACES, &long)]), "x") else {
        panic!("allowed");
    };
    assert!(msg.len() < 800, "{} bytes", msg.len());
}
