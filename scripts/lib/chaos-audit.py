"""The audit of scripts/chaos, over `kubectl get -o json` lists on stdin (one after another).

  chaos-audit.py NS_PREFIX GONE_UIDS_FILE DETAILS_FILE
      stdin: the WindowsApps, then the operator's namespaced and cluster-scoped children.
      stdout: "orphans stuck not_ready"; DETAILS_FILE: one line per finding.
  chaos-audit.py --ready
      stdin: the WindowsApps; stdout: how many are Ready at their current generation.

An orphan is a child (of an app in a namespace NS_PREFIX*) whose owner is not a live WindowsApp:
namespaced children by the UID of their WindowsApp owner reference, cluster-scoped ones by the
winapp.dev/owner-uid annotation. A stuck finalizer is a WindowsApp being deleted. "left" lines are
cluster-scoped children of the apps whose UIDs GONE_UIDS_FILE lists (the apps deleted on purpose).
"""

import json
import sys

OWNER_UID = "winapp.dev/owner-uid"
NAMESPACE_LABEL = "winapp.dev/namespace"


def documents(text):
    decoder, i, items = json.JSONDecoder(), 0, []
    while True:
        while i < len(text) and text[i].isspace():
            i += 1
        if i >= len(text):
            return items
        doc, i = decoder.raw_decode(text, i)
        items.append(doc.get("items", []))


def ready(app):
    """Ready=True at the current generation, or why not."""
    status = app.get("status") or {}
    for c in status.get("conditions") or []:
        if c.get("type") == "Ready":
            if status.get("observedGeneration") != app["metadata"].get("generation"):
                return False, "generation not observed yet"
            return c.get("status") == "True", f"{c.get('status')}/{c.get('reason')}"
    return False, "no Ready condition"


def ident(o):
    m = o["metadata"]
    return f"{o.get('kind', '?')} {m.get('namespace', '') + '/' if m.get('namespace') else ''}{m['name']}"


def main():
    if sys.argv[1:] == ["--ready"]:
        (apps,) = documents(sys.stdin.read())
        print(sum(1 for a in apps if ready(a)[0]))
        return
    prefix, gone_file, details = sys.argv[1:4]
    apps, namespaced, cluster = documents(sys.stdin.read())
    with open(gone_file) as f:
        gone = {line.strip() for line in f if line.strip()}
    live = {a["metadata"]["uid"] for a in apps}
    findings = []
    orphans = stuck = not_ready = 0
    for a in apps:
        m = a["metadata"]
        if m.get("deletionTimestamp"):
            stuck += 1
            findings.append(f"stuck {ident(a)} finalizers={m.get('finalizers')} since {m['deletionTimestamp']}")
            continue
        ok, why = ready(a)
        if not ok:
            not_ready += 1
            findings.append(f"notready {ident(a)} {why}")
    for o in namespaced:
        m = o["metadata"]
        if not m.get("namespace", "").startswith(prefix):
            continue
        owners = [r["uid"] for r in m.get("ownerReferences") or [] if r.get("kind") == "WindowsApp"]
        if not any(u in live for u in owners):
            orphans += 1
            findings.append(f"orphan {ident(o)} owners={owners} deleting={bool(m.get('deletionTimestamp'))}")
    for o in cluster:
        m = o["metadata"]
        if not (m.get("labels") or {}).get(NAMESPACE_LABEL, "").startswith(prefix):
            continue
        uid = (m.get("annotations") or {}).get(OWNER_UID)
        if uid not in live:
            orphans += 1
            findings.append(f"orphan {ident(o)} owner-uid={uid} deleting={bool(m.get('deletionTimestamp'))}")
        if uid in gone:
            findings.append(f"left {ident(o)} owner-uid={uid}")
    with open(details, "w") as f:
        f.writelines(line + "\n" for line in findings)
    print(orphans, stuck, not_ready)


if __name__ == "__main__":
    main()
