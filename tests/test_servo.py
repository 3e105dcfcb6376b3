"""What the load-balancer servo writes for HAProxy, release by release (reconciler.imagebuild.servo),
checked with the real haproxy where it is installed."""

from __future__ import annotations

import pytest

from reconciler.imagebuild.check import check, stand_in_certificate
from reconciler.imagebuild.disk import which
from reconciler.imagebuild.servo import (ERROR_FILE, Listener, ServoRelease, effective_config, idle_timeout,
                                         time_seconds)
from reconciler.imagebuild.testimage import ERROR_503, shipped_template
from reconciler.resources.lb_review import suggested_idle_timeout

needs_haproxy = pytest.mark.skipif(which("haproxy") is None, reason="haproxy is not installed")

HTTP = Listener("http", 80, 8080, "http")
HTTPS = Listener("https", 443, 8443, "https", "arn:aws:iam::123456789012:server-certificate/site")
SSL = Listener("ssl", 993, 993, "tcp", "arn:aws:iam::123456789012:server-certificate/mail")


def release(version: str) -> ServoRelease:
    return ServoRelease(version, "test")


def test_the_servo_keeps_one_of_each_section_stripped_and_without_blank_lines():
    template = ("#template\nglobal\n   maxconn 10   \n\n  #a comment\n\tnbproc 1\ndefaults\n timeout connect 1s\n"
                "defaults\n timeout connect 2s\n\n timeout client 3s\nlisten stats\n bind :81\n"
                "frontend mine-8000\n bind :8000\n")
    text = effective_config(template, release("1.2.0"), load_balancer="lb", listeners=[]).text
    assert text == ("global\n  maxconn 10\n  #a comment\n  \tnbproc 1\n\n"       # a tab is not stripped
                    "listen stats\n  bind :81\n\n"
                    "defaults\n  timeout connect 2s\n  timeout client 3s\n\n"     # the later defaults wins
                    "frontend mine-8000\n  bind :8000\n\n")


def test_listener_sections_by_release():
    text = {v: effective_config(shipped_template(v), release(v), load_balancer="web", listeners=[HTTP, HTTPS, SSL],
                                idle=90, servers=["i-2", "i-1"]).text for v in ("1.0.4", "1.1.0", "1.2.0", "1.4.0")}
    frontend = "frontend http-80\n  # lb-web\n  mode http\n  option forwardfor except 127.0.0.1\n"
    log = "  log /var/lib/load-balancer-servo/haproxy.sock local2 info\n"
    assert frontend + "  bind 0.0.0.0:80\n" + log in text["1.0.4"]
    assert frontend + ("  reqadd X-Forwarded-Proto:\\ http\n  reqadd X-Forwarded-Port:\\ 80\n  bind 0.0.0.0:80\n"
                       "  timeout client 90s\n") in text["1.1.0"]
    assert "backend backend-http-80\n  server http-80 i-1:8080\n  server http-80 i-2:8080\n  mode http\n" \
           "  balance roundrobin\n  timeout server 90s\n" in text["1.2.0"]
    assert "timeout" not in text["1.0.4"].split("frontend", 1)[1]          # 1.0 leaves the listeners to defaults
    cert = "/var/lib/load-balancer-servo/site/cert.pem"
    assert f"  bind 0.0.0.0:443 ssl crt {cert}\n" in text["1.0.4"]
    assert f"  bind 0.0.0.0:443 ssl crt {cert} no-sslv3\n" in text["1.1.0"]
    assert f"  bind 0.0.0.0:443 ssl crt {cert}\n" in text["1.2.0"]               # 1.2: from SSL policies only
    assert "  server https-443 i-1:8443 ssl verify none\n" in text["1.2.0"]
    assert "  server ssl-993 i-1:993\n" in text["1.2.0"]                          # to the instances in clear
    assert "capture request header User-Agent len 8192" in text["1.4.0"] and "capture" not in text["1.2.0"]
    assert r"log-format tcplog\ %f\ %b\ %s\ %ts\ %Tw\ %Tc\ %Tt" in text["1.1.0"]
    assert r"log-format tcplog\ %Ts\ %ci\ %cp" in text["1.2.0"]


def test_listeners_the_servo_leaves_out():
    template = shipped_template("1.2.0") + "frontend mine-80\n bind :80\n"
    made = effective_config(template, release("1.2.0"), load_balancer="lb",
                            listeners=[HTTP, Listener("https", 8443, 443, "http")])
    assert [s.split(" (")[0] for s in made.skipped] == ["HTTP:80", "HTTPS:8443"]
    assert "frontend http-80" not in made.text and "frontend https-8443" not in made.text


def test_idle_timeouts_and_what_a_template_timeout_asks_for():
    assert (idle_timeout(None), idle_timeout(0), idle_timeout(120), idle_timeout(9000)) == (60, 1, 120, 3600)
    assert [time_seconds(v) for v in ("5000", "500ms", "90s", "2m", "1h")] == [5, 0.5, 90, 120, 3600]
    assert [suggested_idle_timeout(v) for v in ("2m", "500ms", "2h", 1500)] == [120, 1, 3600, 2]


@needs_haproxy
@pytest.mark.parametrize("version", ["1.0.4", "1.1.0", "1.2.0", "1.4.0"])
def test_what_each_release_writes_passes_haproxy(version):
    from reconciler.imagebuild.haproxy import render_template

    template = render_template(shipped_template(version))        # deprecated timeouts made current
    made = effective_config(template, release(version), load_balancer="web", listeners=[HTTP, HTTPS, SSL],
                            servers=["i-1", "i-2", "10.0.0.7"])
    files = {ERROR_FILE: ERROR_503} if version >= "1.2" else {}
    result = check(made.text, files=files, effective=True,
                   run_time={path: (stand_in_certificate(), what) for path, what in made.run_time_files})
    assert result.passed, result.output
    notes = "\n".join(result.adaptations)
    assert "server address i-1 (an instance's private address at run time) checked as 127.0.0.1" in notes
    assert "10.0.0.7" not in notes                                # a real address is checked as it is
    assert "checked with a throw-away one" in notes
    assert ("reqadd checked as http-request add-header X-Forwarded-Proto" in notes) == (version >= "1.1")
