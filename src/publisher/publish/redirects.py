"""Old URLs that keep working: each post's ``aliases`` as redirect pages and server maps.

Pure. A static host cannot answer 301 by itself, so the build writes both:

- a redirect page at every alias (``<link rel="canonical">``, ``<meta http-equiv=
  "refresh">`` and ``noindex``), which works on any host, and
- redirect maps for hosts that read them: ``_redirects`` (Netlify, Cloudflare Pages),
  ``redirects.nginx.conf`` (``include`` it inside a ``server {}`` block) and
  ``.htaccess`` (Apache ``mod_alias``), which answer a real 301.

Alias paths were checked by the post reader (no host, query, quotes or spaces), so
they can be written into these files without escaping beyond percent-encoding.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import quote

from publisher.publish.site import Site, post_path

MAP_FILES = ("_redirects", "redirects.nginx.conf", ".htaccess")
_FILE_LIKE = re.compile(r"\.[A-Za-z0-9]{1,5}$")


@dataclass(frozen=True)
class Redirect:
    """One old path (site-relative, decoded, no leading '/') and the post it now points at."""

    alias: str
    target: str  # site-relative path of the post page, e.g. "posts/미중-기술-격차/"
    source: str  # the post file, for conflict messages

    @property
    def page_path(self) -> str:
        """Where the redirect page is written: ``old.html`` as is, ``entry/x`` as a folder."""
        if _FILE_LIKE.search(self.alias) and not self.alias.endswith("/"):
            return self.alias
        return self.alias.rstrip("/") + "/index.html"


def redirects(site: Site) -> list[Redirect]:
    """Every alias of every public post, sorted by alias; an alias equal to its post is skipped."""
    found = []
    for post in site.posts:
        target = post_path(post)
        for alias in post.aliases:
            if alias.rstrip("/") != target.rstrip("/"):
                found.append(Redirect(alias, target, post.source))
    return sorted(found, key=lambda r: r.alias)


def _url_path(path: str) -> str:
    return quote("/" + path, safe="/-._~!*()+,=@:")


def _base_path(site: Site) -> str:
    """The path part of base_url ('/' or '/blog/'), so maps work for a site in a subfolder."""
    rest = site.config.site.base_url.split("://", 1)[-1]
    return "/" + rest.split("/", 1)[1] if "/" in rest else "/"


def _matches(alias: str) -> list[str]:
    """Decoded request paths an alias answers: with and without the trailing '/'."""
    bare = "/" + alias.rstrip("/")
    return [bare] if _FILE_LIKE.search(alias) else [bare, bare + "/"]


def netlify_map(site: Site, rules: list[Redirect]) -> str:
    """``_redirects``: one ``/old /new 301`` line each (trailing slashes are matched by the host)."""
    base = _base_path(site).rstrip("/")
    lines = ["# Written by `publisher build` from the posts' aliases. Do not edit."]
    for rule in rules:
        lines.append(f"{base}{_url_path(rule.alias)} {base}{_url_path(rule.target)} 301")
    return "\n".join(lines) + "\n"


def nginx_map(site: Site, rules: list[Redirect]) -> str:
    """Exact ``location =`` blocks; nginx matches the decoded path, so Hangul is written as is."""
    base = _base_path(site).rstrip("/")
    lines = [
        "# Written by `publisher build` from the posts' aliases. Do not edit.",
        "# Use inside your server { } block:  include /path/to/site/redirects.nginx.conf;",
    ]
    for rule in rules:
        for match in _matches(rule.alias):
            lines.append(
                f'location = "{base}{match}" {{ return 301 {base}{_url_path(rule.target)}; }}'
            )
    return "\n".join(lines) + "\n"


def apache_map(site: Site, rules: list[Redirect]) -> str:
    """``RedirectMatch`` anchored at both ends, so ``/12`` does not catch ``/123``."""
    base = _base_path(site).rstrip("/")
    lines = ["# Written by `publisher build` from the posts' aliases. Do not edit."]
    for rule in rules:
        pattern = re.escape(f"{base}/{rule.alias.rstrip('/')}")
        slash = "" if _FILE_LIKE.search(rule.alias) else "/?"
        target = f"{base}{_url_path(rule.target)}"
        lines.append(f'RedirectMatch 301 "^{pattern}{slash}$" "{target}"')
    return "\n".join(lines) + "\n"


def redirect_maps(site: Site, rules: list[Redirect]) -> dict[str, str]:
    """The three map files by output path; none when no post has an alias."""
    if not rules:
        return {}
    return {
        "_redirects": netlify_map(site, rules),
        "redirects.nginx.conf": nginx_map(site, rules),
        ".htaccess": apache_map(site, rules),
    }
