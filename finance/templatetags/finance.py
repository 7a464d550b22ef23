from django import template

from finance.selectors import account_money

register = template.Library()


@register.simple_tag
def finance_account_money(account):
    """Balance parts and payment allocations of ``account`` for the case page (templates/finance/_balance.html)."""
    return account_money(account=account)
