"""How a backup's stored verification reads to people and to API clients.

The engine stores each method as a `MethodResult` dict (`ok`, `skipped`,
`errors`, `warnings`, `details`); a method that did not run is stored as
`{"ok": false, "skipped": true}`. Outside the engine every method has one
`status` — "passed", "failed" or "skipped" — and an `ok` of true, false or
null: a skipped method counts neither way. The web pages, the restore
preview and the API all read it through here, so they say the same."""

LABELS = {
    "checksum": "Checksum",
    "archive_integrity": "Archive read-back",
    "world_validation": "World check",
    "restore_test": "Restore test",
}
STATUSES = ("passed", "failed", "skipped")
_OK = {"passed": True, "failed": False, "skipped": None}


def method_status(method: dict) -> str:
    """"passed", "failed" or "skipped" for one stored method (an explicit
    `status` wins; else `skipped`, else `ok`)."""
    status = method.get("status")
    if status in STATUSES:
        return status
    if method.get("skipped"):
        return "skipped"
    return "passed" if method.get("ok") else "failed"


def method_ok(status: str):
    return _OK[status]


def methods(verification: dict | None, *, max_errors: int = 20, max_warnings: int = 20) -> list[dict]:
    """Each method of a stored verification, in report order."""
    rows = []
    for name, method in ((verification or {}).get("methods") or {}).items():
        method = method or {}
        status = method_status(method)
        errors = list(method.get("errors") or [])
        details = method.get("details") or {}
        error_count = max(len(errors), int(details.get("error_count") or 0))
        rows.append({
            "name": name,
            "label": LABELS.get(name, name.replace("_", " ").capitalize()),
            "status": status,
            "ok": method_ok(status),
            "errors": errors[:max_errors],
            "error_count": error_count,
            "more_errors": max(0, error_count - 1),
            "warnings": list(method.get("warnings") or [])[:max_warnings],
            "reason": str(details.get("reason") or "") if status == "skipped" else "",
        })
    return rows


def failed_methods(verification: dict | None, *, max_errors: int = 5) -> list[dict]:
    """The methods that ran and failed, each with its first errors."""
    return [m for m in methods(verification, max_errors=max_errors) if m["status"] == "failed"]


def failure_summary(verification: dict | None) -> str:
    """One line: "World check: world/level.dat: level.dat invalid: …"; "" if nothing failed."""
    parts = []
    for method in failed_methods(verification, max_errors=1):
        parts.append(f"{method['label']}: {method['errors'][0]}" if method["errors"] else f"{method['label']} failed")
    return "; ".join(parts)


def world_read_error(verification: dict | None) -> str | None:
    """The world check's first error about level.dat when it failed, else None."""
    for method in failed_methods(verification, max_errors=20):
        if method["name"] == "world_validation":
            for error in method["errors"]:
                if "level.dat" in error:
                    return error
    return None


def world_check_error(verification: dict | None) -> str | None:
    """The world check's first error when it failed, else None."""
    for method in failed_methods(verification, max_errors=1):
        if method["name"] == "world_validation":
            return method["errors"][0] if method["errors"] else "the world check failed"
    return None


def api_verification(record) -> dict | None:
    """The backup API's `verification` object: the verdict and each method
    with `status`, `ok` (null when skipped), its errors and warnings (20 at
    most each) and, when skipped, why."""
    if not record.verification:
        return None
    source = record.verification.get("source") or {"kind": "local"}
    return {
        "passed": record.verification_passed,
        "read_from": source.get("target") or "local",
        "methods": {m["name"]: {"status": m["status"], "ok": m["ok"], "errors": m["errors"],
                                "warnings": m["warnings"], "reason": m["reason"] or None}
                    for m in methods(record.verification)},
    }
