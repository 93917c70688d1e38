"""Administration for admins. Users: the list (name, roles, point, active), adding a user, changing a user's
display name, roles, point or activation, and setting a new password. Acceptance points: the list and adding
one. Every rule (admins only, password length, the last admin, point names and nesting) is UserService's or
PointService's; a refusal comes back beside the field it names."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from pki.enums import Role
from pki.errors import ConflictError, FieldError, NotFoundError, ValidationError
from pki.models import User
from web.errors import field_errors
from web.ui import actor, service

bp = Blueprint("admin", __name__, url_prefix="/admin")
Page = str | tuple[str, int] | Response


def _users_page(form: dict[str, str] | None = None, errors: dict[str, list[str]] | None = None) -> str:
    users = service().users.directory(actor=actor())
    points = service().points.list()
    return render_template(
        "admin/users.html",
        users=users,
        roles=[r.value for r in Role],
        points=points,
        point_names={p.id: p.name for p in points},
        form=form or {},
        chosen=request.form.getlist("roles") if form else [],
        errors=errors or {},
    )


@bp.get("/users")
def users() -> Page:
    return _users_page()


@bp.post("/users")
def add_user() -> Page:
    form = {k: request.form.get(k, "") for k in ("username", "display_name", "point")}
    try:
        password = _new_password()
        service().users.add(
            form["username"].strip(),
            password,
            request.form.getlist("roles"),
            actor=actor(),
            display_name=form["display_name"],
            point=form["point"] or None,  # "": a center user
        )
    except ValidationError as e:
        return _users_page(form, field_errors(e)), 400
    except ConflictError as e:  # the name is taken
        return _users_page(form, {"username": [e.message_zh]}), 409
    flash(f"用户 {form['username'].strip()} 已添加", "ok")
    return redirect(url_for("admin.users"))


def _user(username: str) -> User:
    found = next((u for u in service().users.directory(actor=actor()) if u.username == username), None)
    if found is None:
        raise NotFoundError(f"no user {username!r}", message_zh="用户不存在")
    return found


def _user_page(username: str, errors: dict[str, list[str]] | None = None, status: int = 200) -> Page:
    found = _user(username)
    points = service().points.list()
    page = render_template(
        "admin/user.html",
        user=found,
        roles=[r.value for r in Role],
        points=points,
        point=next((p.name for p in points if p.id == found.point_id), ""),  # "": a center user
        errors=errors or {},
        form=request.form if request.method == "POST" else {},
    )
    return (page, status) if status != 200 else page


@bp.get("/users/<username>")
def user(username: str) -> Page:
    return _user_page(username)


@bp.post("/users/<username>")
def update_user(username: str) -> Page:
    active = request.form.get("active", "")
    point = request.form.get("point")  # "": a center user; absent: unchanged
    try:
        service().users.update(
            username,
            actor=actor(),
            display_name=request.form.get("display_name", ""),
            roles=request.form.getlist("roles"),
            active={"yes": True, "no": False}.get(active),
            point=point or None,
            center=point == "",
        )
    except ValidationError as e:
        return _user_page(username, field_errors(e), 400)
    except ConflictError as e:  # the last active admin stays
        return _user_page(username, {"user": [e.message_zh]}, 409)
    flash("用户信息已保存", "ok")
    return redirect(url_for("admin.user", username=username))


@bp.post("/users/<username>/password")
def reset_password(username: str) -> Page:
    try:
        service().users.update(username, actor=actor(), password=_new_password())
    except ValidationError as e:
        return _user_page(username, field_errors(e), 400)
    flash("新密码已设置，请当面或通过安全渠道告知本人", "ok")
    return redirect(url_for("admin.user", username=username))


def _new_password() -> str:
    """The new password typed twice (as `pkictl user add` prompts twice); the service checks its length."""
    password = request.form.get("password", "")
    if password != request.form.get("password_again", ""):
        raise ValidationError([FieldError("password_again", "passwords differ", "两次输入的密码不一致")])
    return password


# -- acceptance points ---------------------------------------------------------------------------------------


def _points_page(form: dict[str, str] | None = None, errors: dict[str, list[str]] | None = None) -> str:
    return render_template(
        "admin/points.html",
        points=service().points.directory(actor=actor()),
        provinces=service().ctx.policies.provinces.names,
        form=form or {},
        errors=errors or {},
    )


@bp.get("/points")
def points() -> Page:
    return _points_page()


@bp.post("/points")
def add_point() -> Page:
    form = {k: request.form.get(k, "") for k in ("name", "province", "parent")}
    try:
        added = service().points.add(
            form["name"], province=form["province"], parent=form["parent"] or None, actor=actor()
        )
    except ValidationError as e:
        return _points_page(form, field_errors(e)), 400
    except ConflictError as e:  # the name is taken
        return _points_page(form, {"name": [e.message_zh]}), 409
    flash(f"受理点 {added.name} 已添加", "ok")
    return redirect(url_for("admin.points"))
