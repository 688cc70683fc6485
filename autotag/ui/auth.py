"""Optional login: who is at the dashboard, and with which role (`autotag.access`).

Off unless `.streamlit/secrets.toml` has an `[auth]` section (Streamlit's OpenID Connect
login: Google, Microsoft, Okta, Keycloak, any OIDC provider). Then every page first asks
for a login, and roles come from the same file:

    [autotag.roles]
    admins = ["ada@example.org"]
    trainers = ["*"]            # anyone who logged in
    viewers = []

Without `[auth]` the dashboard acts for the machine's OS user, unrestricted, as it always
did (with AUTOTAG_REQUIRE_LOGIN=1 it stays closed instead). A secrets file that exists but
cannot be read keeps the dashboard closed: a typo must not open a shared box to everyone.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import streamlit as st

from autotag.access import Actor, Role, record
from autotag.store.run_folder import default_runs_dir

#: Role lists in `[autotag.roles]`, strongest first: a person in two lists gets the stronger role.
ROLE_LISTS: tuple[tuple[str, Role], ...] = (("admins", "admin"), ("trainers", "trainer"), ("viewers", "viewer"))
#: Set to 1 on a shared box: without an [auth] section the dashboard then stays closed
#: instead of acting for the OS user (a secrets file deleted or not found fails closed).
REQUIRE_LOGIN_ENV = "AUTOTAG_REQUIRE_LOGIN"
#: Logins recorded by this server, by (e-mail, the ID token's issue time, outcome): one audit
#: line per login, not one per tab or reload.
_RECORDED: set[tuple[str, object, str]] = set()


class SecretsError(RuntimeError):
    """The secrets file exists and cannot be read."""


def _secrets() -> Mapping[str, Any]:
    try:
        return {key: st.secrets[key] for key in st.secrets}
    except FileNotFoundError as exc:  # Streamlit's "no secrets" and "cannot parse them" alike
        if any(f.is_file() for f in _files()):
            raise SecretsError(f"the secrets file cannot be read: {exc}") from None
        return {}


def _files() -> list[Path]:
    return [Path(f).expanduser() for f in st.get_option("secrets.files")]


def role_of(email: str | None, roles: Mapping[str, Any]) -> Role | None:
    """The strongest role whose list names `email` (case-insensitive) or "*"; None: no role."""
    for key, role in ROLE_LISTS:
        members = roles.get(key, [])
        members = [members] if isinstance(members, str) else list(members)
        if "*" in members or (email and email.lower() in {str(m).lower() for m in members}):
            return role
    return None


def current_actor() -> Actor | None:
    """Who acts in this session: the OS user without login, the logged-in person with login,
    None while logged out, logged in with no role, or with an e-mail the provider did not
    verify (a self-registered account could otherwise claim an admin's address)."""
    secrets = _secrets()
    origin = _origin()
    if "auth" not in secrets:
        if os.environ.get(REQUIRE_LOGIN_ENV, "").strip() in ("1", "true", "yes"):
            raise SecretsError(f"{REQUIRE_LOGIN_ENV} is set but no [auth] section was found in {_files()}")
        return Actor.local(via="dashboard", origin=origin)
    if not st.user.is_logged_in or st.user.get("email_verified") is False:
        return None
    email = str(st.user.get("email") or "")
    roles = secrets.get("autotag", {}).get("roles", {})
    role = role_of(email, roles)
    return Actor(email, role, "dashboard", origin) if role and email else None


def acting() -> Actor:
    """The actor of a page that `gate` let through (stops the page if there is none, or if the
    secrets file became unreadable since: the next `gate` says so)."""
    try:
        actor = current_actor()
    except SecretsError:
        actor = None
    if actor is None:
        st.stop()
    return actor


def signed_in() -> bool:
    """Whether the session may see the pages (no login configured, or logged in with a role)."""
    try:
        return current_actor() is not None
    except SecretsError:
        return False


def gate() -> Actor:
    """Stop the page unless someone with a role is logged in (a no-op without login)."""
    try:
        actor = current_actor()
    except SecretsError as exc:
        st.error(f"{exc}. The dashboard stays closed until it can be read (see README, Shared deployment).")
        st.stop()
    if actor is not None:
        if actor.role != "local":
            login = (actor.name, st.user.get("iat"), "ok")
            if login not in _RECORDED:
                _RECORDED.add(login)
                record(default_runs_dir(), actor, "login", None)
            with st.sidebar:
                st.caption(f"Logged in as **{actor.name}** ({actor.role})")
                st.button("Log out", on_click=st.logout, key="auth_logout", icon=":material/logout:")
        return actor
    st.title("autotag")
    if st.user.is_logged_in:
        email = st.user.get("email") or "(no e-mail from the provider)"
        unverified = st.user.get("email_verified") is False
        why = "the provider did not verify this e-mail address" if unverified else "no role"
        login = (str(email), st.user.get("iat"), why)
        if login not in _RECORDED:
            _RECORDED.add(login)
            record(default_runs_dir(), Actor(str(email), "none", "dashboard", _origin()), "login", None, "refused", why)
        if unverified:
            st.error(f"{email} is not verified by your login provider: verify it there, then log in again.")
        else:
            st.error(f"You are logged in as {email}, who has no role on this dashboard: ask an admin to add you.")
        st.button("Log out", on_click=st.logout, key="auth_logout")
    else:
        st.info("This dashboard is shared: log in to see its runs.")
        st.button("Log in", on_click=st.login, type="primary", key="auth_login", icon=":material/login:")
    st.stop()


def _origin() -> str:
    """The browser's address as Streamlit sees it (None through localhost; spoofable)."""
    address = st.context.ip_address
    return address if isinstance(address, str) and address else "localhost"
