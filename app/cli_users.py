"""`flask users ...`: create staff accounts, reset passwords, list accounts."""

from __future__ import annotations

import sys

import click
from flask import Flask
from flask.cli import AppGroup

from app.models import ROLES
from app.services.shared import users as user_service

users_cli = AppGroup("users", help="Manage staff accounts of the web UI.")

CLI_ACTOR = "cli"


def register_user_commands(app: Flask) -> None:
    """Attach the `users` command group."""
    app.cli.add_command(users_cli)


def _read_password(from_stdin: bool) -> str | None:
    if not from_stdin:
        return None
    return sys.stdin.readline().rstrip("\n")


@users_cli.command("create")
@click.option("--username", required=True, help="Sign-in name (lower case).")
@click.option("--role", type=click.Choice(ROLES), required=True)
@click.option("--name", "display_name", default="", help="Name shown in the UI and audit log.")
@click.option("--locale", type=click.Choice(user_service.LOCALES), default="zh")
@click.option(
    "--password-stdin",
    is_flag=True,
    help="Read the password from the first line of standard input instead of generating one.",
)
def users_create(
    username: str, role: str, display_name: str, locale: str, password_stdin: bool
) -> None:
    """Create an account; a random password is printed unless one is given on stdin."""
    given = _read_password(password_stdin)
    password = given or user_service.generate_password()
    try:
        user = user_service.create_user(
            username,
            display_name=display_name,
            role=role,
            password=password,
            actor=CLI_ACTOR,
            locale=locale,
            must_change_password=given is None,
        )
    except user_service.UserError as exc:
        raise click.ClickException(f"{exc.field or 'user'}: {exc}") from exc
    click.echo(f"created {user.role} {user.username}")
    if given is None:
        click.echo(f"password: {password}  (must be changed at first sign-in)")


@users_cli.command("reset-password")
@click.argument("username")
@click.option("--password-stdin", is_flag=True, help="Read the new password from stdin.")
def users_reset_password(username: str, password_stdin: bool) -> None:
    """Give an account a new password and end its sessions."""
    given = _read_password(password_stdin)
    try:
        change = user_service.reset_password(
            username, actor=CLI_ACTOR, password=given, must_change=given is None
        )
    except user_service.UserNotFound as exc:
        raise click.ClickException(str(exc)) from exc
    except user_service.UserError as exc:
        raise click.ClickException(f"password: {exc}") from exc
    click.echo(f"password of {change.user.username} reset")
    if given is None:
        click.echo(f"password: {change.password}  (must be changed at next sign-in)")


@users_cli.command("list")
def users_list() -> None:
    """List the accounts."""
    accounts = user_service.list_users()
    for user in accounts:
        state = "active" if user.active else "inactive"
        click.echo(
            f"{user.username:<20} {user.role:<13} {user.locale:<3} {state:<9} {user.display_name}"
        )
    click.echo(f"{len(accounts)} accounts")
