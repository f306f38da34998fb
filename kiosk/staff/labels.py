"""The codes the registry stores, as staff read them in their own language: one mapping per
kind of code, here and nowhere else. A code missing from its mapping (written by a newer
version, or by hand) is shown as it is written rather than failing the page.

Names that live in the registry (course titles, categories, libraries, institutions) come from
`Names`, read once per page."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from ..registry.domain import Standing
from ..registry.roles import Role, staff_username
from ..registry.services import RegistryService

# Where a patron stands in the programme (kiosk.registry.domain.Standing).
STANDINGS: dict[str, Any] = {
    Standing.NONE: _l("no seat, not waiting"),
    Standing.SEATED: _l("has a seat"),
    Standing.OFFERED: _l("has been offered a seat"),
    Standing.WAITING: _l("on the waiting list"),
}
ROLES: dict[str, Any] = {
    Role.LIBRARIAN: _l("librarian"),
    Role.COORDINATOR: _l("coordinator"),
    Role.IT_ADMIN: _l("IT admin"),
}
# kiosk.registry.domain.terminal_state
TERMINAL_STATES: dict[str, Any] = {
    "online": _l("online"),
    "offline": _l("offline"),
    "outdated": _l("outdated version"),
    "revoked": _l("revoked"),
}
# How a freed seat is given (kiosk.registry.promotion.PROMOTIONS).
PROMOTIONS: dict[str, Any] = {
    "grant": _l("Give the seat at once to the first in line"),
    "offer": _l("Offer the seat and hold it for a number of opening days"),
}
# Whether self-registered accounts wait for an identity check
# (kiosk.registry.promotion.VERIFICATIONS).
VERIFICATIONS: dict[str, Any] = {
    "open": _l("Open: self-registered accounts are active at once"),
    "verify": _l("Verify at the desk: pending until an identity document is checked"),
}
# How a password was set at the desk (kiosk.registry.desk).
PASSWORD_WAYS: dict[str, Any] = {
    "typed": _l("typed by the patron"),
    "one_time": _l("printed one-time password"),
}
# Whose place a merge kept (kiosk.registry.verification).
MERGE_STANDING_FROM: dict[str, Any] = {
    "kept": _l("the account kept"),
    "erased": _l("the account erased"),
}
# What the academy's platform was asked to do (kiosk.registry.academy_link).
ACADEMY_CHANGES: dict[str, Any] = {
    "created": _l("account created"),
    "reactivated": _l("account opened again"),
    "updated": _l("account brought up to date"),
    "deactivated": _l("account closed"),
    "deleted": _l("account deleted"),
    "unchanged": _l("nothing to change"),
}
# The counts of an academy sync ("academy_synced": what was done to how many patrons, and
# the two sides' sizes), kiosk.registry.academy_sync.reconcile.
SYNC_COUNTS: dict[str, Any] = {
    "created": _l("Accounts created"),
    "reactivated": _l("Accounts opened again"),
    "updated": _l("Accounts brought up to date"),
    "deactivated": _l("Accounts closed"),
    "deleted": _l("Accounts deleted"),
    "unchanged": _l("Accounts left as they were"),
    "holders": _l("Seat holders"),
    "platform": _l("Our users on the platform before"),
}
# Why the academy's platform was asked to change an account, when it was not the seat's own
# change (kiosk.registry.academy_sync).
ACADEMY_WHY: dict[str, Any] = {
    "sync": _l("the platform was checked against the registry"),
}
# Reasons the registry writes itself (a person's reason is shown as typed).
REASONS: dict[str, Any] = {
    "merged": _l("merged with another account"),
}
# Actors that are not a person (a staff member is "staff:<user name>", a patron their
# pseudonym).
ACTORS: dict[str, Any] = {
    "registry": _l("the registry (automatic)"),
    "retention": _l("automatic erasure (retention rules)"),
    "cli": _l("command line"),
    "kiosk demo": _l("the demo, at start-up"),
    "demo": _l("the demo, at start-up"),
    "kiosk registry init": _l("the registry's first start (kiosk registry init)"),
}
# Where an action came from, when no library is configured there (kiosk.staff.base.place,
# kiosk.registry_setup): the staff pages on a desk PC, or a kiosk.
PLACES: dict[str, Any] = {
    "desk": _l("desk"),
    "kiosk": _l("kiosk"),
}

# The audit log's actions and the keys of its details
# (tests/integration/test_audit_page.py checks that every action and key written anywhere in
# kiosk/ has one); anything else is still shown, as written.
ACTIONS: dict[str, Any] = {
    "cap_changed": _l("Cap changed"),
    "settings_changed": _l("Settings changed"),
    "practice_reset": _l("Practice started again"),
    "waiting_list_removed": _l("Removed from the waiting list"),
    "waiting_list_moved": _l("Moved in the waiting list"),
    "waiting_list_left": _l("Left the waiting list"),
    "offer_made": _l("Seat offered"),
    "offer_expiring": _l("Reminder sent: the seat offer ends soon"),
    "offer_accepted": _l("Seat offer accepted"),
    "offer_declined": _l("Seat offer declined"),
    "offer_expired": _l("Seat offer ended without an answer"),
    "seat_given_up": _l("Seat given up"),
    "patron_registered": _l("Account created"),
    "member_linked": _l("Library card linked to a new account"),
    "member_system_set": _l("Member system set (library cards)"),
    "member_system_removed": _l("Member system removed (library cards)"),
    "patron_viewed": _l("Patron's record viewed"),
    "patron_enrolled": _l("Enrolled in a course"),
    "patron_withdrawn": _l("Withdrawn from a course"),
    "patron_erased": _l("Account erased"),
    "patron_export": _l("List of patrons exported"),
    "waiting_list_export": _l("Waiting list exported (personal data)"),
    "password_set": _l("Password set at the desk"),
    "patron_corrected": _l("Patron's details corrected"),
    "receipt_printed": _l("Receipt printed"),
    "receipt_emailed": _l("Receipt sent by e-mail"),
    "identity_checked": _l("Identity document checked"),
    "pending_erased": _l("Unchecked account erased"),
    "pending_expired": _l("Unchecked account erased: time for the check ran out"),
    "dismissed": _l("Possible duplicate dismissed"),
    "merged": _l("Duplicate accounts merged"),
    "course_added": _l("Course added"),
    "course_changed": _l("Course changed"),
    "course_retired": _l("Course retired"),
    "course_restored": _l("Course brought back"),
    "module_of_the_month_set": _l("Module of the month set"),
    "module_of_the_month_cleared": _l("Module of the month removed"),
    "notices_resent": _l("Given-up e-mails sent again"),
    "alerts_chosen": _l("E-mails about new courses chosen"),
    "alerts_stopped": _l("E-mails about new courses stopped"),
    "academy_user_changed": _l("Course platform account changed"),
    "academy_synced": _l("Course platform checked against the registry"),
    "academy_resent": _l("Given-up changes for the course platform sent again"),
    "academy_exported": _l("Seat holders exported for the course platform"),
    "staff_login": _l("Staff log-in"),
    "staff_login_failed": _l("Staff log-in failed"),
    "staff_logout": _l("Staff log-out"),
    "assist_handed_back": _l("Kiosk handed back to the patron (assisted mode)"),
    "staff_created": _l("Staff account created"),
    "staff_disabled": _l("Staff account disabled"),
    "staff_password_changed": _l("Staff password changed"),
    "terminal_added": _l("Terminal added"),
    "terminal_revoked": _l("Terminal revoked"),
    "maintenance_set": _l("Maintenance message set"),
    "maintenance_cleared": _l("Maintenance message removed"),
    "programme_end_set": _l("Programme end date set"),
    "institution_added": _l("Institution added"),
    "institution_renamed": _l("Institution renamed"),
    "institution_retired": _l("Institution retired"),
    "institution_restored": _l("Institution offered again"),
    "library_added": _l("Library added"),
    "library_renamed": _l("Library renamed"),
    "library_retired": _l("Library retired"),
    "library_restored": _l("Library offered again"),
}
# Keys of the details, and of the settings inside "before" and "after". A key ending in
# "_<something>" whose first part is here reads as that label and the rest: quota_ANT is
# "Quota ANT", title_nl "Title nl".
DETAIL_KEYS: dict[str, Any] = {
    "from": _l("From"),
    "change": _l("Change"),
    "why": _l("Why"),
    "counts": _l("Counts"),
    "to": _l("To"),
    "promoted": _l("Promoted"),
    "reason": _l("Reason"),
    "assisted_by": _l("Assisted by"),
    "position": _l("Place in the line"),
    "had": _l("Had"),
    "until": _l("Until"),
    "address": _l("Address"),
    "login": _l("SIP account"),
    "staff": _l("Staff account"),
    "role": _l("Role"),
    "terminal": _l("Terminal"),
    "library": _l("Library"),
    "institution": _l("Institution"),
    "identity_checked": _l("Identity document checked"),
    "ends_on": _l("Ends on"),
    "before": _l("Before"),
    "after": _l("After"),
    "part": _l("Part"),
    "slug": _l("Course"),
    "old_slug": _l("Former course code"),
    "changed": _l("Changed"),
    "category": _l("Category"),
    "categories": _l("Categories"),
    "hours": _l("Hours"),
    "title": _l("Title"),
    "summary": _l("Summary"),
    "featured_cleared": _l("No longer module of the month"),
    "row_count": _l("Rows"),
    "starts": _l("First day"),
    "ends": _l("Last day"),
    "course": _l("Course"),
    "standing": _l("Standing"),
    "standing_from": _l("Standing taken from"),
    "how": _l("How"),
    "unlocked": _l("Unlocked"),
    "days": _l("Days"),
    "other": _l("Other account"),
    "merged_into": _l("Merged into"),
    "courses_moved": _l("Courses moved"),
    "erased": _l("Erased"),
    "activated": _l("Account made active"),
    "count": _l("Number"),
    "promotion": _l("Freed seats"),
    "offer_days": _l("Opening days an offer holds"),
    "fair_share": _l("Fair share"),
    "quota": _l("Quota"),
    "opening_days": _l("Opening days"),
    "verification": _l("New accounts"),
    "pending_days": _l("Days to show an identity document"),
    "closed_days": _l("Closed days"),
    # The fields a "patron_corrected" entry's "changed" list names (kiosk.registry.corrections)
    "first_name": _l("First name"),
    "last_name": _l("Last name"),
    "email": _l("E-mail address"),
    "birth_date": _l("Date of birth"),
    "postcode": _l("Postcode"),
    "phone": _l("Phone number"),
    "language": _l("Language"),
    "possible_duplicate": _l("Possible duplicate"),
    "min_age": _l("Minimum age"),
}
# What a "settings_changed" entry's part names.
PARTS: dict[str, Any] = {
    "seats": _l("How freed seats are given"),
    "institution": _l("Institution settings"),
    "closed_days": _l("Closed days"),
    "sign_up": _l("Sign-up"),
}
# What an institution's sign-up does with a phone number or a postcode (FieldRule).
SIGN_UP_FIELDS: dict[str, Any] = {
    "not_asked": _l("Not asked"),
    "optional": _l("Asked, optional"),
    "required": _l("Asked, required"),
}


def label_of(mapping: Mapping[str, Any], code: object) -> str:
    """The label of a code in its mapping, or the code itself."""
    text = "" if code is None else str(code)
    return str(mapping.get(text, text))


def detail_label(key: str) -> str:
    """A detail key as a person reads it: its label, "Quota ANT" for quota_ANT, or the key
    with spaces."""
    if key in DETAIL_KEYS:
        return str(DETAIL_KEYS[key])
    prefix, _sep, rest = key.rpartition("_")
    if prefix in DETAIL_KEYS and rest:
        return f"{DETAIL_KEYS[prefix]} {rest}"
    return key.replace("_", " ")


def action_text(action: str) -> str:
    """An audit entry's action; one this version does not know, with spaces."""
    return str(ACTIONS.get(action, action.replace("_", " ")))


def actor_text(actor: str) -> str:
    """Who did it: a staff member's user name, a patron's pseudonym, or what the registry
    did by itself."""
    username = staff_username(actor)
    if username is not None:
        return _("%(username)s (staff)", username=username)
    return label_of(ACTORS, actor)


@dataclass(frozen=True)
class Names:
    """The registry's names in the page's language: courses by code, categories, libraries
    and institutions."""

    courses: dict[str, str]
    categories: dict[str, str]
    libraries: dict[str, str]
    institutions: dict[str, str]

    @classmethod
    def read(cls, service: RegistryService, lang: str) -> Names:
        rows = service.courses_admin.courses(lang)  # retired courses too
        institutions = service.institutions()
        return cls(
            courses={r.slug: r.title for r in rows},
            categories={r.category_code: r.category for r in rows},
            libraries={lib.code: lib.name for i in institutions for lib in i.libraries},
            institutions={i.code: i.names.get(lang) or i.code for i in institutions})

    def course(self, slug: str) -> str:
        return self.courses.get(slug, slug)

    def place(self, where: str) -> str:
        """Where an action came from ("desk 10.0.0.5", "ANT-PERMEKE 10.0.0.5") as the kind
        of place in words, or the library's name, then the address: "balie 10.0.0.5",
        "Bibliotheek Permeke 10.0.0.5"."""
        code, _sep, address = where.partition(" ")
        name = self.libraries.get(code) or label_of(PLACES, code)
        return f"{name} {address}".strip()
