"""Django's own file log through the adapter's filter: the application's
log lines with planted secrets (a presigned URL, the OAuth callback request
line, session dumps, tokens, cookies, session ids) leave no secret in the
file; the same records through a handler without the filter keep them all
(positive control)."""

import logging
import logging.config

from prt_gate_auth.redact import RedactingFilter

CANARIES = {
    "signature": "5e2b9c0d41f7a3e8b6c2d9f0a1b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5",
    "credential": "AKIAIOSFODNN7CANARY1",
    "code": "c0deCanary77",
    "state": "st4teCanary88",
    "access": "accessCanary1234",
    "refresh": "refreshCanary5678",
    "session": "sessCanary0a1b2c3d4e",
    "csrf": "csrfCanary9f8e",
    "jwt": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJjYW5hcnkifQ.c2lnQ2FuYXJ5",
    "password": "pwCanary42",
}


def emit(logger):
    c = CANARIES
    url = (
        "https://primetrade-documents.s3.amazonaws.com/bols/2025/PRT-2025-0002.pdf?X-Amz-Algorithm=AWS4-HMAC-SHA256"
        f"&X-Amz-Credential={c['credential']}%2F20251030%2Fus-east-2%2Fs3%2Faws4_request&X-Amz-Date=20251030T120001Z"
        f"&X-Amz-Expires=86400&X-Amz-SignedHeaders=host&X-Amz-Signature={c['signature']}"
    )
    logger.info("Generated PDF for BOL %s at %s", "PRT-2025-0002", url)
    # The development server's request line (args, like django.server).
    logging.getLogger("django.server").info(
        '"%s" %s %s', f"GET /auth/callback/?code={c['code']}&state={c['state']} HTTP/1.1", "302", "0"
    )
    logger.info(
        "Session data: %s",
        {"sso_access_token": c["access"], "sso_refresh_token": c["refresh"], "primetrade_role": {"role": "Office"}},
    )
    logger.info("items %s", list({"sso_access_token": c["access"], "tenant_id": "primetrade"}.items()))
    logger.warning("request headers %r", {"HTTP_COOKIE": f"primetrade_sessionid={c['session']}; csrftoken={c['csrf']}"})
    logger.info("id token %s", c["jwt"])
    try:
        raise ValueError(f"login failed for token={c['access']} password={c['password']}")
    except ValueError:
        logger.exception("callback error")


def configure(tmp_path, with_filter):
    path = tmp_path / ("filtered.log" if with_filter else "raw.log")
    handler = {"class": "logging.FileHandler", "filename": str(path), "formatter": "verbose"}
    if with_filter:
        handler["filters"] = ["redact"]
    logging.config.dictConfig(
        {
            "version": 1,
            "disable_existing_loggers": False,
            "formatters": {"verbose": {"format": "{levelname} {asctime} {module} {message}", "style": "{"}},
            "filters": {"redact": {"()": "prt_gate_auth.redact.RedactingFilter"}},
            "handlers": {"file": handler},
            "loggers": {
                "bol_system": {"handlers": ["file"], "level": "INFO", "propagate": False},
                "django.server": {"handlers": ["file"], "level": "INFO", "propagate": False},
            },
        }
    )
    return path


def close_handlers():
    for name in ("bol_system", "django.server"):
        for h in logging.getLogger(name).handlers:
            h.close()


def test_file_log_through_the_filter_keeps_no_secret(tmp_path):
    path = configure(tmp_path, with_filter=True)
    emit(logging.getLogger("bol_system"))
    close_handlers()
    text = path.read_text()
    for name, value in CANARIES.items():
        assert value not in text, f"{name} survived in the file log:\n{text}"
    # Still a useful log: keys, the object key and labels are kept.
    assert "Generated PDF for BOL PRT-2025-0002 at https://primetrade-documents.s3.amazonaws.com/bols/2025/PRT-2025-0002.pdf?" in text
    assert "X-Amz-Signature=[REDACTED:sigv4]" in text
    assert "code=[REDACTED:oauth]&state=[REDACTED:oauth]" in text
    assert "'sso_access_token': '[REDACTED:secret]'" in text
    assert "primetrade_sessionid=[REDACTED:cookie]" in text
    assert "ValueError: login failed" in text and "Traceback" in text


def test_positive_control_without_the_filter_every_secret_is_written(tmp_path):
    path = configure(tmp_path, with_filter=False)
    emit(logging.getLogger("bol_system"))
    close_handlers()
    text = path.read_text()
    for name, value in CANARIES.items():
        assert value in text, f"{name} was not planted:\n{text}"


def test_filter_is_idempotent_across_handlers():
    f = RedactingFilter()
    r = logging.LogRecord("x", logging.INFO, __file__, 1, "token=%s", ("abc123",), None)
    f.filter(r)
    f.filter(r)
    assert r.getMessage() == "token=[REDACTED:oauth]"
