"""AWS Organizations through boto3 against the simulator.

Usage: boto3_organizations.py ENDPOINT MANAGEMENT MEMBER ORG_ID ACCOUNTS.
Exits non-zero, with the reason, when a response does not parse or says
something AWS would not.
"""
import sys

import boto3
from botocore.exceptions import ClientError

endpoint, management, member, org_id, accounts = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])


def client(account):
    return boto3.client("organizations", endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id="SIM" + account, aws_secret_access_key="any")


def check(cond, what):
    if not cond:
        sys.exit("boto3 organizations: " + what)


org = client(member).describe_organization()["Organization"]
check(org["Id"] == org_id and org["MasterAccountId"] == management, "DescribeOrganization %r" % org)

pages = list(client(management).get_paginator("list_accounts").paginate(PaginationConfig={"PageSize": 2}))
listed = [a for p in pages for a in p["Accounts"]]
check(len(listed) == accounts and len(pages) == (accounts + 1) // 2, "ListAccounts: %d accounts in %d pages" % (len(listed), len(pages)))
check(all(a["Status"] in ("ACTIVE", "SUSPENDED") and a["JoinedTimestamp"].year >= 2024 for a in listed), "ListAccounts %r" % listed)

try:
    client(member).list_accounts()
    check(False, "a member lists the accounts")
except ClientError as e:
    check(e.response["Error"]["Code"] == "AccessDeniedException", "a member's ListAccounts: %s" % e.response["Error"])
print("ok")
