"""The coordinator's closed days per institution on the settings page: saved, shown from today
on, refused (nothing saved) when one day is not a date, and used by an offer's hold."""

from __future__ import annotations

from datetime import date, timedelta

from tests.support.factories import log_in_staff


def _form(service, **days: str) -> dict[str, str]:  # type: ignore[no-untyped-def]
    codes = [i.code for i in service.institutions()]
    return {f"closed_days_{code}": days.get(code, "") for code in codes}


def test_closed_days_are_saved_shown_and_checked(app, service) -> None:  # type: ignore[no-untyped-def]
    coordinator = app.test_client()
    log_in_staff(coordinator, "coordinator", "nl")
    next_year = date.today().year + 1
    bad = coordinator.post("/nl/staff/settings/closed-days", data=_form(
        service, ANT=f"25/12/{next_year}\n31/02/{next_year}", KOR=f"{next_year}-11-11"))
    assert bad.status_code == 422
    page = bad.get_data(as_text=True)
    assert "Dit is geen datum" in page and 'id="closed_days_ANT-error"' in page
    assert f"31/02/{next_year}" in page  # what was typed is kept
    assert service.closures.closed_days() == {}  # nothing saved, KOR neither

    done = coordinator.post("/nl/staff/settings/closed-days", data=_form(
        service, ANT=f"25/12/{next_year}, 26-12-{next_year}", KOR=f"{next_year}-11-11"))
    assert done.status_code == 302
    assert service.closures.closed_days() == {
        "ANT": [date(next_year, 12, 25), date(next_year, 12, 26)],
        "KOR": [date(next_year, 11, 11)]}
    shown = coordinator.get("/nl/staff/settings").get_data(as_text=True)
    assert f"25/12/{next_year}\n26/12/{next_year}" in shown
    assert "De sluitingsdagen van 2 organisaties zijn opgeslagen." in shown
    same = coordinator.post("/nl/staff/settings/closed-days", data=_form(
        service, ANT=f"25/12/{next_year}\n26/12/{next_year}", KOR=f"11/11/{next_year}"),
        follow_redirects=True).get_data(as_text=True)
    assert "Er is niets gewijzigd: de sluitingsdagen waren al zo ingesteld." in same

    # A past closed day is kept but not shown, and survives the next save.
    yesterday = date.today() - timedelta(days=1)
    service.closures.set_closed_days("MUN", [yesterday], actor="test")
    assert yesterday.strftime("%d/%m/%Y") not in coordinator.get(
        "/nl/staff/settings").get_data(as_text=True)
    coordinator.post("/nl/staff/settings/closed-days", data=_form(
        service, ANT=f"25/12/{next_year}", MUN=f"01/05/{next_year}"))
    assert service.closures.closed_days()["MUN"] == [yesterday, date(next_year, 5, 1)]

    librarian = app.test_client()
    log_in_staff(librarian, "an.peeters")
    assert librarian.post("/en/staff/settings/closed-days",
                          data=_form(service)).status_code == 403
