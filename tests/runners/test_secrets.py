"""Which environment values are secrets, and their redaction from what ralphnb shows."""

from __future__ import annotations

from ralphnb.runners.secrets import is_secret_name, redact, secret_values


def test_secret_names_include_keys_tokens_passwords_but_not_git_identity():
    secret = ["ANTHROPIC_API_KEY", "GITHUB_TOKEN", "DB_PASSWORD", "AWS_SECRET_ACCESS_KEY"]
    for name in (*secret, "NPM_AUTHTOKEN", "MY_AUTH", "app_secret"):
        assert is_secret_name(name), name
    for name in ("GIT_AUTHOR_EMAIL", "GIT_AUTHOR_NAME", "GIT_COMMITTER_EMAIL", "PATH", "HOME"):
        assert not is_secret_name(name), name


def test_secret_values_of_any_length_and_url_passwords():
    env = {
        "ANTHROPIC_API_KEY": "sk-ant-123456789",
        "OPENAI_API_KEY": "short",
        "DATABASE_URL": "postgres://app:hunter2@db.local:5432/app",
        "GIT_AUTHOR_EMAIL": "dev@example.invalid",
        "ANTHROPIC_BASE_URL": "http://127.0.0.1:1/v1",
    }
    assert secret_values(env) == ["sk-ant-123456789", "hunter2", "short"]


def test_redact_replaces_secrets_in_nested_values_and_short_ones_only_as_tokens():
    secrets = ["sk-ant-123456789", "abc1"]
    event = {"text": "key sk-ant-123456789 and abc1, not xabc12", "list": ["abc1", 3]}
    assert redact(event, secrets) == {
        "text": "key [redacted] and [redacted], not xabc12",
        "list": ["[redacted]", 3],
    }


def test_redact_hides_any_url_password_even_unknown_ones():
    msg = "cannot connect to postgres://app:s3cr3t@db:5432/x (timeout)"
    assert redact(msg, []) == "cannot connect to postgres://app:[redacted]@db:5432/x (timeout)"
    assert redact("see https://example.org/a:b@c", []) == "see https://example.org/a:b@c"
