"""Default education pages (supervisors edit them afterwards); existing rows are never overwritten."""

from django.db import migrations

PAGES = [
    ("rights", 10,
     "你的权利", "催收人员只能在允许的时间联系你（一般为 8:00–22:00，除非你同意其他时间），不得骚扰、威胁或辱骂你，"
     "不得向你的亲友透露你的债务。你可以对债务提出异议；异议处理期间，关于该笔债务的催收联系会暂停。"
     "你可以随时在本页面选择联系方式或退订短信和邮件。",
     "Your rights", "Collectors may contact you only at allowed times (usually 08:00-22:00 unless you agree "
     "otherwise), may not harass, threaten or insult you, and may not tell your family or friends about your debt. "
     "You can dispute a debt; while the dispute is reviewed, collection contact about it stops. You can choose how we "
     "contact you, or stop text messages and emails, on this page at any time."),
    ("how-collection-works", 20,
     "催收是如何进行的", "贷款机构把逾期账户委托给我们处理。我们会告诉你欠款金额和到期日，并与你商量还款方式："
     "一次还清、承诺在某日前还款，或者分期还款。你在本页提出的方案会由工作人员审核并答复。"
     "所有联系都有记录，并受合规规则检查。",
     "How collection works", "The lender has asked us to handle the overdue account. We tell you the amount and the "
     "due date and agree a way to pay with you: in full, a promise to pay by a date, or a plan in instalments. A plan "
     "you propose on this page is reviewed and answered by a member of staff. Every contact is recorded and checked "
     "against the contact rules."),
    ("advice", 30,
     "到哪里寻求帮助", "如果你难以还款，请尽早告诉我们，我们可以讨论可负担的方案。你也可以向当地的金融消费者"
     "权益保护机构、法律援助中心或免费的债务咨询机构寻求独立意见。对我们的服务不满意，可以在本页提交投诉。",
     "How to get advice", "If you find it hard to pay, tell us early so that we can discuss an affordable plan. You "
     "can also get independent advice from a financial consumer protection body, a legal aid centre or a free debt "
     "advice service. If you are unhappy with how we treated you, you can make a complaint on this page."),
]


def seed(apps, schema_editor):
    EducationPage = apps.get_model("borrowers", "EducationPage")
    for slug, position, zh_title, zh_body, en_title, en_body in PAGES:
        for language, title, body in (("zh-hans", zh_title, zh_body), ("en", en_title, en_body)):
            EducationPage.objects.get_or_create(slug=slug, language=language,
                                                defaults={"position": position, "title": title, "body": body})


class Migration(migrations.Migration):
    dependencies = [("borrowers", "0002_complaints_education_templates")]
    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
