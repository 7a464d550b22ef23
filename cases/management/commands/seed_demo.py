"""Demo data for `make run`: lenders, users with printed logins, borrowers and accounts with history.

History is written through the same services as the product (contact attempts pass the
compliance gate, so some demo attempts are refused and audited, as they would be).
Idempotent: does nothing when the demo lender already exists.
"""

import contextlib
import random
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from django.contrib.auth.models import Permission
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils import timezone

from cases import services
from cases.gate import contact_check
from cases.models import Borrower, Lender, OverdueAccount, User
from scoring.demo import demo_scoring_seed

PASSWORD = "demo-pass-2026"
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
GIVEN = ["伟", "芳", "娜", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "娟", "涛", "明", "超", "秀英", "桂英", "建华"]
LENDERS = [
    ("hx-bank", "华夏示范银行", "bank", "CN"),
    ("jd-cf", "金达消费金融", "consumer finance", "CN"),
    ("yq-online", "云起网贷", "online lender", "CN"),
]
FOREIGN = [("US", ("America/New_York",)), ("US-MA", ("America/New_York",)), ("AU", ("Australia/Sydney",)),
           ("US", ("America/New_York", "America/Los_Angeles"))]


class Command(BaseCommand):
    help = "Load demo lenders, users, borrowers, accounts and history (idempotent)."

    def add_arguments(self, parser):
        parser.add_argument("--accounts", type=int, default=300)
        parser.add_argument("--seed", type=int, default=7)

    def handle(self, *args, accounts: int, seed: int, **options):
        if Lender.objects.filter(code=LENDERS[0][0]).exists():
            self.stdout.write("Demo data already loaded.")
            self.print_logins()
            return
        rnd = random.Random(seed)
        with transaction.atomic():
            lenders = [Lender.objects.create(code=c, name=n, kind=k, default_jurisdiction=j, status="active")
                       for c, n, k, j in LENDERS]
            Lender.objects.create(code="pending-lender", name="待审核小贷", kind="online lender", status="pending")
            admin = self.make_user("admin", User.Role.ADMIN, is_staff=True, is_superuser=True)
            supervisor = self.make_user("supervisor", User.Role.SUPERVISOR, is_staff=True)
            # Supervisors edit the reminder schedule (django-celery-beat) in the admin.
            supervisor.user_permissions.set(Permission.objects.filter(content_type__app_label="django_celery_beat"))
            agents = [self.make_user(f"agent{i}", User.Role.AGENT) for i in (1, 2, 3)]
            for lender in lenders:
                self.make_user(f"{lender.code}-user", User.Role.LENDER, lender=lender)
            today = timezone.localdate()
            rows, assignments = [], {}
            for i in range(accounts):
                lender = lenders[i % len(lenders)]
                jurisdiction, zones = ("CN", ("Asia/Shanghai",)) if i % 10 else FOREIGN[(i // 10) % len(FOREIGN)]
                name = rnd.choice(SURNAMES) + rnd.choice(GIVEN)
                borrower = Borrower.objects.create(
                    lender=lender, name=name, phones=[f"13{rnd.randint(100000000, 999999999)}"],
                    emails=[f"user{i}@example.cn"], jurisdiction=jurisdiction, time_zones=list(zones),
                    address=f"示范路{i + 1}号", cease=(i % 37 == 0), dispute=(i % 53 == 0),
                )
                balance = Decimal(rnd.randint(500, 80000)) + Decimal(rnd.randint(0, 99)) / 100
                due = today - timedelta(days=rnd.randint(3, 200))
                account = OverdueAccount.objects.create(
                    lender=lender, borrower=borrower, external_ref=f"{lender.code.upper()}-{i + 1:05d}",
                    product=rnd.choice(["消费贷", "信用卡", "现金贷"]), principal=balance, balance=balance,
                    currency="CNY" if jurisdiction == "CN" else ("AUD" if jurisdiction == "AU" else "USD"),
                    due_date=due,
                )
                services.account_age(account_id=account.pk, today=today)
                if i % 6:
                    assignments.setdefault(agents[i % len(agents)], []).append(account.pk)
                rows.append(account)
            # The same path as the supervisor's bulk assignment: checks, lock release, one audit event per account.
            for agent, account_ids in assignments.items():
                services.account_assign_bulk(actor=supervisor, account_ids=account_ids, agent=agent)
        self.history(rnd, rows, agents, supervisor)
        self.breach_example(rows)
        demo_scoring_seed(seed=seed, stdout=self.stdout)  # scoring/demo.py: history with a learnable signal, model, scores
        self.stdout.write(self.style.SUCCESS(f"Loaded {len(rows)} demo accounts."))
        self.print_logins()
        del admin

    def make_user(self, username, role, lender=None, **extra):
        user = User(username=username, role=role, lender=lender, **extra)
        user.set_password(PASSWORD)
        user.save()
        return user

    def history(self, rnd, accounts, agents, supervisor):
        """A few past attempts per account, at lawful-looking local times, through the gate."""
        now = timezone.now()
        for account in accounts:
            account.refresh_from_db()
            agent = account.assigned_agent or supervisor
            zone = ZoneInfo(account.borrower.zones[0])
            times = sorted(
                datetime.combine(timezone.localdate(now, zone) - timedelta(days=rnd.randint(1, 20)),
                                 time(rnd.randint(9, 19), rnd.choice([0, 15, 30, 45])), zone)
                for _ in range(rnd.randint(0, 4)))
            for at in times:
                outcome = rnd.choice(["no_answer", "no_answer", "busy", "voicemail", "right_party_contact", "promise"])
                # Past contacts are stored even when they broke a rule (as breaches): keep the demo's
                # history lawful, and leave one deliberate breach below for the incident queue.
                if not contact_check(account=account, channel="call", at=at).allowed:
                    continue
                try:
                    services.contact_attempt_record(account=account, actor=agent, channel="call", outcome=outcome,
                                                    occurred_at=at, notes="演示数据", source="import")
                except (services.ContactRefused, ValidationError):
                    continue
            if account.is_open and rnd.random() < 0.2:
                with contextlib.suppress(ValidationError):
                    services.promise_create(actor=agent, account=account,
                                            amount=min(account.balance, Decimal(rnd.randint(200, 3000))),
                                            due_date=date.today() + timedelta(days=rnd.randint(0, 14)))
            if rnd.random() < 0.1:
                services.payment_record(actor=agent, account=account, amount=min(account.balance, Decimal(rnd.randint(100, 2000))),
                                        paid_at=now - timedelta(days=rnd.randint(0, 10)), method="bank transfer")

    def breach_example(self, accounts):
        """One contact reported after the fact that broke the quiet hours: a breach for the incident queue."""
        account = next((a for a in accounts if a.borrower.jurisdiction == "CN" and a.assigned_agent_id), None)
        if account is None:
            return
        zone = ZoneInfo(account.borrower.zones[0])
        at = datetime.combine(timezone.localdate(timezone.now(), zone) - timedelta(days=1), time(22, 40), zone)
        with contextlib.suppress(services.ContactRefused, ValidationError):
            services.contact_attempt_record(account=account, actor=account.assigned_agent, channel="call",
                                            outcome="right_party_contact", occurred_at=at, source="web",
                                            notes="演示数据：借款人深夜回电后外呼（事后登记）")

    def print_logins(self):
        self.stdout.write(f"\nLogins (password for all: {PASSWORD}):")
        for u in User.objects.order_by("role", "username"):
            self.stdout.write(f"  {u.get_role_display():<14} {u.username}")
        self.stdout.write("Open http://127.0.0.1:8000/ (API docs at /api/docs/)\n")
