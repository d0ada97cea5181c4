"""Real identity services for the sign-in tests: an OpenID provider (the npm `oidc-provider` package,
tests/oidc/provider.mjs, run with node) and an LDAP directory (Debian's slapd with a configuration and a
directory of its own in a temporary folder, loaded from LDIF). Both listen on 127.0.0.1 only.

    with OpenIDProvider(redirect_uri, {"mai": {"password": "…", "claims": {"email": "…"}}}) as provider:
        provider.issuer, provider.client_id, provider.client_secret
    with Directory(folder, [{"uid": "mai", "password": "…", "mail": "…"}]) as directory:
        directory.url, directory.user_dn  # the FEEDBACK_LDAP_URL and FEEDBACK_LDAP_USER_DN to use
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import ROOT, free_port, poll_until

OIDC_FOLDER = ROOT / "tests" / "oidc"
SLAPD = "/usr/sbin/slapd"
SLAPADD = "/usr/sbin/slapadd"
SUFFIX = "dc=example,dc=org"


def missing_node() -> str | None:
    """Why the OpenID provider cannot run here (None when it can): node or the npm package is missing."""
    if shutil.which("node") is None:
        return "node is not installed (bash .ci/run installs nodejs and npm)"
    if not (OIDC_FOLDER / "node_modules" / "oidc-provider").is_dir():
        return "tests/oidc/node_modules is missing: run `npm ci` in tests/oidc (bash .ci/run does)"
    return None


def missing_slapd() -> str | None:
    """Why the LDAP directory cannot run here (None when it can)."""
    if not (os.access(SLAPD, os.X_OK) and os.access(SLAPADD, os.X_OK)):
        return "Debian's slapd is not installed (bash .ci/run installs slapd and ldap-utils)"
    return None


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


class OpenIDProvider:
    """tests/oidc/provider.mjs on a free port, with one confidential client whose redirect URI is given."""

    def __init__(self, redirect_uri: str, accounts: dict[str, dict[str, Any]], log: Path) -> None:
        self.port = free_port()
        self.issuer = f"http://127.0.0.1:{self.port}"
        self.client_id = "feedback-tests"
        self.client_secret = secrets.token_urlsafe(24)
        self.redirect_uri = redirect_uri
        self.accounts = accounts
        self.log = log
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> OpenIDProvider:
        env = {
            **os.environ,
            "PORT": str(self.port),
            "CLIENT_ID": self.client_id,
            "CLIENT_SECRET": self.client_secret,
            "REDIRECT_URI": self.redirect_uri,
            "ACCOUNTS": json.dumps(self.accounts),
        }
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                ["node", "provider.mjs"], cwd=OIDC_FOLDER, env=env, stdout=out, stderr=subprocess.STDOUT
            )
        try:
            poll_until(lambda: self.process.poll() is not None or self._answering(), 30, "the OpenID provider")
        except AssertionError:
            self.__exit__()
            raise
        if self.process.poll() is not None:
            raise RuntimeError(f"the OpenID provider exited: {self.log.read_text()[-2000:]}")
        return self

    def _answering(self) -> bool:
        try:
            return httpx.get(f"{self.issuer}/.well-known/openid-configuration", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def __exit__(self, *exc: object) -> None:
        if self.process is not None:
            _stop(self.process)

    def settings(self, **more: str) -> dict[str, str]:
        """The server's FEEDBACK_OIDC_* settings for this provider."""
        return {
            "FEEDBACK_OIDC_ISSUER": self.issuer,
            "FEEDBACK_OIDC_CLIENT_ID": self.client_id,
            "FEEDBACK_OIDC_CLIENT_SECRET": self.client_secret,
            **more,
        }


def ssha(password: str) -> str:
    """An OpenLDAP {SSHA} userPassword value."""
    salt = secrets.token_bytes(8)
    return "{SSHA}" + base64.b64encode(hashlib.sha1(password.encode() + salt).digest() + salt).decode()


SLAPD_CONF = """\
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
modulepath /usr/lib/ldap
moduleload back_mdb
pidfile {folder}/slapd.pid
# A DN with an empty password is an unauthenticated bind, which this server lets through (as many
# do): the sign-in must never send an empty password.
allow bind_anon_cred
database mdb
maxsize 10485760
suffix "{suffix}"
rootdn "cn=admin,{suffix}"
rootpw {rootpw}
directory {folder}/data
access to attrs=userPassword by anonymous auth by * none
access to * by self read by users read by anonymous auth
"""


class Directory:
    """A throwaway slapd on a free port: its own slapd.conf and mdb database in `folder`, loaded with
    slapadd from LDIF (people under ou=people, uid=<name>, with a mail address)."""

    def __init__(self, folder: Path, people: list[dict[str, str]]) -> None:
        self.folder = folder
        self.port = free_port()
        self.url = f"ldap://127.0.0.1:{self.port}"
        self.user_dn = f"uid={{username}},ou=people,{SUFFIX}"
        self.people = people
        self.process: subprocess.Popen | None = None

    def _ldif(self) -> str:
        entries = [
            f"dn: {SUFFIX}\nobjectClass: dcObject\nobjectClass: organization\no: Example\ndc: example\n",
            f"dn: ou=people,{SUFFIX}\nobjectClass: organizationalUnit\nou: people\n",
        ]
        for person in self.people:
            uid = person["uid"]
            mail = f"mail: {person['mail']}\n" if person.get("mail") else ""
            entries.append(
                f"dn: uid={uid},ou=people,{SUFFIX}\nobjectClass: inetOrgPerson\nuid: {uid}\ncn: {uid}\nsn: {uid}\n"
                f"userPassword: {ssha(person['password'])}\n{mail}"
            )
        return "\n".join(entries)

    def __enter__(self) -> Directory:
        (self.folder / "data").mkdir(parents=True)
        conf = self.folder / "slapd.conf"
        conf.write_text(SLAPD_CONF.format(folder=self.folder, suffix=SUFFIX, rootpw=ssha(secrets.token_hex(8))))
        ldif = self.folder / "people.ldif"
        ldif.write_text(self._ldif())
        loaded = subprocess.run(
            [SLAPADD, "-f", str(conf), "-l", str(ldif)], capture_output=True, text=True, timeout=60, check=False
        )
        if loaded.returncode != 0:
            raise RuntimeError(f"slapadd failed: {loaded.stderr[-2000:]}")
        log = (self.folder / "slapd.log").open("ab")
        # -d: stay in the foreground (the test owns the process); `stats` logs each bind.
        self.process = subprocess.Popen(
            [SLAPD, "-f", str(conf), "-h", f"{self.url}/", "-d", "stats"], stdout=log, stderr=subprocess.STDOUT
        )
        log.close()
        try:
            poll_until(lambda: self.process.poll() is not None or self._listening(), 30, "slapd")
        except AssertionError:
            self.__exit__()
            raise
        if self.process.poll() is not None:
            raise RuntimeError(f"slapd exited: {self.log()[-2000:]}")
        return self

    def _listening(self) -> bool:
        with socket.socket() as sock:
            sock.settimeout(0.2)
            return sock.connect_ex(("127.0.0.1", self.port)) == 0

    def log(self) -> str:
        return (self.folder / "slapd.log").read_text(errors="replace")

    def __exit__(self, *exc: object) -> None:
        if self.process is not None:
            _stop(self.process)

    def settings(self) -> dict[str, str]:
        """The server's FEEDBACK_LDAP_* settings for this directory."""
        return {"FEEDBACK_LDAP_URL": self.url, "FEEDBACK_LDAP_USER_DN": self.user_dn}
