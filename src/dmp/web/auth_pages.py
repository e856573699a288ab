"""Login, second factor, activation and logout pages, shared by both spaces."""

from __future__ import annotations

from collections.abc import Callable

from starlette.responses import Response
from starlette.routing import Route

from dmp.accounts import service, sessions, throttle
from dmp.accounts.service import PRO, TOTP, Account, Outcome
from dmp.outbox import EMAIL, SMS, mask_email, mask_phone
from dmp.web.common import Ctx, Space, form_handler, lock_message, page_handler, safe_next

INVALID_LOGIN = "Identifiant ou mot de passe incorrect."
INVALID_ACTIVATION = "Identifiant ou code d'activation incorrect, ou code expiré."

# What happens right after a successful login, per space: returns the page to go to.
AfterLogin = Callable[[Ctx, Account], str]


def _login_form(
    ctx: Ctx,
    status: int = 200,
    errors: list[str] | None = None,
    notice: str | None = None,
    next_: str | None = None,
) -> Response:
    ctx.ensure_session()
    return ctx.render(
        "login.html", status=status, title="Connexion", errors=errors or [], notice=notice, next=next_ or ""
    )


def login_get(ctx: Ctx) -> Response:
    q = ctx.request.query_params
    next_ = safe_next(q.get("suivant"), ctx.space)
    if ctx.full_account() is not None:
        return ctx.redirect(next_ or ctx.space.home)
    notice = None
    if q.get("expiree") or ctx.expired:
        notice = "Votre session a expiré (inactivité ou durée maximale atteinte) : reconnectez-vous."
    elif q.get("deconnecte"):
        notice = "Vous êtes déconnecté(e)."
    elif q.get("partout"):
        notice = "Vous êtes déconnecté(e) de tous vos appareils."
    return _login_form(ctx, notice=notice, next_=next_)


def login_post(ctx: Ctx, form: dict[str, str]) -> Response:
    login, password = form.get("identifiant", "").strip(), form.get("mot_de_passe", "")
    next_ = safe_next(form.get("suivant"), ctx.space)
    if not login or not password:
        return _login_form(ctx, 400, ["Saisissez votre identifiant et votre mot de passe."], next_=next_)
    r = service.login_password(ctx.conn, ctx.keys, ctx.space.realm, login, password, ctx.now, ctx.address)
    if r.outcome is Outcome.LOCKED:
        return _login_form(ctx, 429, [lock_message(r.until)], next_=next_)
    if r.outcome is Outcome.SUSPENDED:
        return _login_form(
            ctx,
            403,
            ["Ce compte est suspendu. Adressez-vous à votre organisme de rattachement."],
            next_=next_,
        )
    if r.outcome is not Outcome.OK or r.account is None:
        return _login_form(ctx, 401, [INVALID_LOGIN], next_=next_)
    sessions.purge_expired(ctx.conn, ctx.now)
    throttle.purge(ctx.conn, ctx.now)
    s = ctx.rotate(sessions.MFA, r.account.id, data={"next": next_} if next_ else None)
    service.send_login_code(ctx.conn, ctx.keys, s, r.account, ctx.now)
    return ctx.redirect(ctx.space.url("/connexion/code"))


def _factor_text(acc: Account) -> str:
    if acc.second_factor == EMAIL and acc.email:
        return f"Un code à 6 chiffres vient de vous être envoyé par courriel à {mask_email(acc.email)}."
    if acc.second_factor == SMS and acc.phone:
        return f"Un code à 6 chiffres vient de vous être envoyé par SMS au {mask_phone(acc.phone)}."
    return "Saisissez le code à 6 chiffres affiché par votre application d'authentification."


def _code_form(ctx: Ctx, acc: Account, status: int = 200, errors: list[str] | None = None) -> Response:
    return ctx.render(
        "code.html",
        status=status,
        title="Vérification en deux étapes",
        errors=errors or [],
        factor_text=_factor_text(acc),
    )


def code_get(ctx: Ctx) -> Response:
    s, acc = ctx.session, ctx.account
    if s is None or s.stage != sessions.MFA or acc is None:
        return ctx.to_login()
    return _code_form(ctx, acc)


PREVIOUS_LOGIN = "previous_login"  # session data: ISO time of the account's login before this session's


def make_code_post(after_login: AfterLogin) -> Callable[[Ctx, dict[str, str]], Response]:
    def code_post(ctx: Ctx, form: dict[str, str]) -> Response:
        s, acc = ctx.session, ctx.account
        if s is None or s.stage != sessions.MFA or acc is None:
            return ctx.to_login()
        recovery = form.get("mode") == "secours"
        code = form.get("code_secours" if recovery else "code", "")
        r = service.verify_second_factor(
            ctx.conn, ctx.keys, s, acc, code, ctx.now, ctx.address, recovery=recovery
        )
        if r.outcome is Outcome.LOCKED:
            ctx.end_session()
            return _login_form(ctx, 429, [lock_message(r.until)])
        if r.outcome is Outcome.EXPIRED:
            ctx.end_session()
            return _login_form(
                ctx, 401, ["Code expiré ou trop d'essais : reconnectez-vous pour en recevoir un nouveau."]
            )
        if r.outcome is Outcome.SUSPENDED:
            ctx.end_session()
            return _login_form(ctx, 403, ["Ce compte est suspendu."])
        if r.outcome is not Outcome.OK or r.account is None:
            _trace_login(ctx, acc, ok=False)
            what = "Code de secours incorrect ou déjà utilisé." if recovery else "Code incorrect."
            return _code_form(ctx, acc, 401, [what])
        _trace_login(ctx, r.account, ok=True)
        next_ = safe_next(s.data.get("next"), ctx.space)
        # The login before this one: the patient's home tells what is new since then.
        seen = {PREVIOUS_LOGIN: r.previous_login.isoformat()} if r.previous_login is not None else None
        ctx.rotate(sessions.FULL, acc.id, data=seen)
        target = after_login(ctx, r.account)
        return ctx.redirect(target if target != ctx.space.home else (next_ or target))

    return code_post


def _trace_login(ctx: Ctx, acc: Account, *, ok: bool) -> None:
    """TR-02: the patient's (or representative's) logins are in the record's trail."""
    if acc.realm != service.PERSON:
        return
    from dmp.audit import Outcome as AuditOutcome
    from dmp.services import trail

    actor = service.actor_for(acc, source_address=ctx.address)
    trail.record(
        ctx.conn,
        actor,
        trail.AuditAction.PATIENT_LOGIN,
        patient_id=acc.patient_id,
        at=ctx.now,
        detail=None if ok else "second facteur refusé",
        outcome=AuditOutcome.SUCCESS if ok else AuditOutcome.REFUSED,
    )


def logout(ctx: Ctx, form: dict[str, str]) -> Response:
    ctx.end_session()
    return ctx.redirect(ctx.space.url("/connexion") + "?deconnecte=1")


def logout_everywhere(ctx: Ctx, form: dict[str, str]) -> Response:
    acc = ctx.full_account()
    if acc is None:
        return ctx.to_login()
    sessions.destroy_all(ctx.conn, acc.id)
    ctx.session = None
    ctx.clear_cookie = True
    return ctx.redirect(ctx.space.url("/connexion") + "?partout=1")


# ---- activation ------------------------------------------------------------------------------


def _activation_form(
    ctx: Ctx, status: int = 200, errors: list[str] | None = None, code: str = ""
) -> Response:
    ctx.ensure_session()
    return ctx.render(
        "activation.html", status=status, title="Activer mon compte", errors=errors or [], code=code
    )


def activation_get(ctx: Ctx) -> Response:
    return _activation_form(ctx, code=ctx.request.query_params.get("code", "")[:40])


def activation_post(ctx: Ctx, form: dict[str, str]) -> Response:
    login, code = form.get("identifiant", "").strip(), form.get("code", "")
    if not login or not code:
        return _activation_form(ctx, 400, ["Saisissez votre identifiant et votre code d'activation."])
    r = service.check_activation(ctx.conn, ctx.keys, ctx.space.realm, login, code, ctx.now, ctx.address)
    if r.outcome is Outcome.LOCKED:
        return _activation_form(ctx, 429, [lock_message(r.until)])
    if r.outcome is not Outcome.OK or r.account is None:
        return _activation_form(ctx, 401, [INVALID_ACTIVATION])
    ctx.rotate(sessions.SETUP, r.account.id)
    return ctx.redirect(ctx.space.url("/activation/mot-de-passe"))


def _setup(ctx: Ctx) -> Account | None:
    s, acc = ctx.session, ctx.account
    if s is None or s.stage != sessions.SETUP or acc is None or acc.status != service.PENDING:
        return None
    return acc


def _restart(ctx: Ctx) -> Response:
    return ctx.redirect(ctx.space.url("/activation"))


def password_get(ctx: Ctx) -> Response:
    if _setup(ctx) is None:
        return _restart(ctx)
    return ctx.render("password.html", title="Choisir mon mot de passe")


def password_post(ctx: Ctx, form: dict[str, str]) -> Response:
    acc = _setup(ctx)
    if acc is None:
        return _restart(ctx)
    problems = service.set_password(
        ctx.conn,
        acc.id,
        form.get("mot_de_passe", ""),
        form.get("confirmation", ""),
        ctx.now,
        personal=service.personal_words(ctx.conn, acc),
    )
    if problems:
        return ctx.render("password.html", status=400, title="Choisir mon mot de passe", errors=problems)
    return ctx.redirect(ctx.space.url("/activation/second-facteur"))


def factor_get(ctx: Ctx) -> Response:
    acc = _setup(ctx)
    if acc is None:
        return _restart(ctx)
    if not acc.has_password:
        return ctx.redirect(ctx.space.url("/activation/mot-de-passe"))
    if ctx.space.realm == PRO:
        return ctx.redirect(ctx.space.url("/activation/authentificateur"))
    return ctx.render("factor.html", title="Choisir ma vérification en deux étapes", account=acc, choice="")


def factor_post(ctx: Ctx, form: dict[str, str]) -> Response:
    acc = _setup(ctx)
    if acc is None or ctx.session is None:
        return _restart(ctx)
    if not acc.has_password:
        return ctx.redirect(ctx.space.url("/activation/mot-de-passe"))
    choice = form.get("facteur", "")
    if choice == TOTP or ctx.space.realm == PRO:
        return ctx.redirect(ctx.space.url("/activation/authentificateur"))
    recipient = form.get("courriel" if choice == EMAIL else "telephone", "")
    error = service.start_contact_setup(ctx.conn, ctx.keys, ctx.session, acc, choice, recipient, ctx.now)
    if error:
        return ctx.render(
            "factor.html",
            status=400,
            title="Choisir ma vérification en deux étapes",
            account=acc,
            errors=[error],
            choice=choice,
        )
    return ctx.redirect(ctx.space.url("/activation/verification"))


def verification_get(ctx: Ctx) -> Response:
    acc = _setup(ctx)
    if acc is None or ctx.session is None or "recipient" not in ctx.session.data:
        return _restart(ctx)
    return _verification_form(ctx)


def _verification_form(ctx: Ctx, status: int = 200, errors: list[str] | None = None) -> Response:
    if ctx.session is None:
        raise RuntimeError("the verification form needs a session (its callers check it)")
    data = ctx.session.data
    where = mask_email(data["recipient"]) if data.get("channel") == EMAIL else mask_phone(data["recipient"])
    how = "par courriel à" if data.get("channel") == EMAIL else "par SMS au"
    return ctx.render(
        "verification.html",
        status=status,
        title="Confirmer la réception des codes",
        errors=errors or [],
        sent_to=f"{how} {where}",
    )


def verification_post(ctx: Ctx, form: dict[str, str]) -> Response:
    acc = _setup(ctx)
    s = ctx.session
    if acc is None or s is None or "recipient" not in s.data:
        return _restart(ctx)
    r = service.confirm_contact_setup(ctx.conn, ctx.keys, s, acc, form.get("code", ""), ctx.now, ctx.address)
    if r.outcome is Outcome.LOCKED:
        ctx.end_session()
        return _activation_form(ctx, 429, [lock_message(r.until)])
    if r.outcome is Outcome.EXPIRED:
        return ctx.render(
            "factor.html",
            status=400,
            title="Choisir ma vérification en deux étapes",
            account=acc,
            errors=["Trop d'essais ou code expiré : choisissez à nouveau et demandez un nouveau code."],
            choice="",
        )
    if r.outcome is not Outcome.OK:
        return _verification_form(ctx, 401, ["Code incorrect."])
    return _finish(ctx, acc)


def _totp_form(ctx: Ctx, acc: Account, status: int = 200, errors: list[str] | None = None) -> Response:
    secret = service.pending_totp_secret(ctx.conn, ctx.keys, acc)
    if secret is None:
        secret, _ = service.start_totp_setup(ctx.conn, ctx.keys, acc, ctx.now)
    from dmp.accounts.codes import totp_uri

    uri = totp_uri(secret, acc.rpps or acc.display_name, "DMP Pro" if acc.realm == PRO else "DMP")
    grouped = " ".join(secret[i : i + 4] for i in range(0, len(secret), 4))
    return ctx.render(
        "totp.html",
        status=status,
        title="Configurer mon application d'authentification",
        errors=errors or [],
        secret=grouped,
        uri=uri,
    )


def totp_get(ctx: Ctx) -> Response:
    acc = _setup(ctx)
    if acc is None:
        return _restart(ctx)
    if not acc.has_password:
        return ctx.redirect(ctx.space.url("/activation/mot-de-passe"))
    return _totp_form(ctx, acc)


def totp_post(ctx: Ctx, form: dict[str, str]) -> Response:
    acc = _setup(ctx)
    if acc is None or ctx.session is None or not acc.has_password:
        return _restart(ctx)
    r = service.confirm_totp_setup(
        ctx.conn, ctx.keys, ctx.session, acc, form.get("code", ""), ctx.now, ctx.address
    )
    if r.outcome is Outcome.LOCKED:
        ctx.end_session()
        return _activation_form(ctx, 429, [lock_message(r.until)])
    if r.outcome is not Outcome.OK:
        return _totp_form(
            ctx,
            acc,
            401,
            [
                "Code incorrect : vérifiez l'heure de votre téléphone et saisissez le "
                "code actuellement affiché."
            ],
        )
    return _finish(ctx, acc)


def _finish(ctx: Ctx, acc: Account) -> Response:
    recovery = service.finish_activation(ctx.conn, ctx.keys, acc.id, ctx.now)
    ctx.rotate(sessions.FULL, acc.id)
    return ctx.render("recovery_codes.html", title="Compte activé : vos codes de secours", codes=recovery)


def routes(space: Space, after_login: AfterLogin) -> list[Route]:
    p = space.prefix
    get, post = page_handler, form_handler
    return [
        Route(f"{p}/connexion", get(space, login_get), methods=["GET"]),
        Route(f"{p}/connexion", post(space, login_post), methods=["POST"]),
        Route(f"{p}/connexion/code", get(space, code_get), methods=["GET"]),
        Route(f"{p}/connexion/code", post(space, make_code_post(after_login)), methods=["POST"]),
        Route(f"{p}/deconnexion", post(space, logout), methods=["POST"]),
        Route(f"{p}/deconnexion-partout", post(space, logout_everywhere), methods=["POST"]),
        Route(f"{p}/activation", get(space, activation_get), methods=["GET"]),
        Route(f"{p}/activation", post(space, activation_post), methods=["POST"]),
        Route(f"{p}/activation/mot-de-passe", get(space, password_get), methods=["GET"]),
        Route(f"{p}/activation/mot-de-passe", post(space, password_post), methods=["POST"]),
        Route(f"{p}/activation/second-facteur", get(space, factor_get), methods=["GET"]),
        Route(f"{p}/activation/second-facteur", post(space, factor_post), methods=["POST"]),
        Route(f"{p}/activation/verification", get(space, verification_get), methods=["GET"]),
        Route(f"{p}/activation/verification", post(space, verification_post), methods=["POST"]),
        Route(f"{p}/activation/authentificateur", get(space, totp_get), methods=["GET"]),
        Route(f"{p}/activation/authentificateur", post(space, totp_post), methods=["POST"]),
    ]
