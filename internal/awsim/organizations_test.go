package awsim

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	astypes "github.com/aws/aws-sdk-go-v2/service/autoscaling/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/organizations"
	orgtypes "github.com/aws/aws-sdk-go-v2/service/organizations/types"
	"github.com/aws/aws-sdk-go-v2/service/sts"
)

// The organization of these tests: the owner (of keys and images) is its
// management account; prod holds one account and the OU web, which holds
// the target; dev holds one active and one suspended account; a delegated
// administrator sits in the root. The outsider is in no organization.
const (
	orgID      = "o-exampleorg1"
	orgRoot    = "r-ex12"
	prodOU     = "ou-ex12-prod0001"
	webOU      = "ou-ex12-web00001"
	devOU      = "ou-ex12-dev00001"
	prodAcct   = "200000000001"
	devAcct    = "300000000001"
	suspended  = "300000000002"
	delegate   = "400000000001"
	outsider   = "555566667777"
	orgARN     = "arn:aws:organizations::" + owner + ":organization/" + orgID
	prodOUARN  = "arn:aws:organizations::" + owner + ":ou/" + orgID + "/" + prodOU
	webOUPath  = orgID + "/" + orgRoot + "/" + prodOU + "/" + webOU + "/"
	prodOUPath = orgID + "/" + orgRoot + "/" + prodOU + "/"
)

const orgWorld = `{"organizations": [{
  "id": "` + orgID + `", "root_id": "` + orgRoot + `", "management_account": "` + owner + `",
  "delegated_administrators": ["` + delegate + `"],
  "accounts": [{"id": "` + delegate + `", "name": "tooling"}],
  "organizational_units": [
    {"name": "prod", "id": "` + prodOU + `", "accounts": [{"id": "` + prodAcct + `", "name": "prod"}],
     "organizational_units": [{"name": "web", "id": "` + webOU + `", "accounts": [{"id": "` + target + `", "name": "web", "email": "web@example.com"}]}]},
    {"name": "dev", "id": "` + devOU + `", "accounts": [
      {"id": "` + devAcct + `", "name": "dev"},
      {"id": "` + suspended + `", "name": "old", "status": "SUSPENDED", "joined_method": "CREATED"}]}]}]}`

// startOrgSim starts the simulator with orgWorld loaded.
func startOrgSim(t *testing.T) (*Server, string) {
	t.Helper()
	s, url := startSim(t)
	if err := s.LoadWorld(strings.NewReader(orgWorld)); err != nil {
		t.Fatal(err)
	}
	return s, url
}

func orgClient(url, account string) *organizations.Client {
	return organizations.NewFromConfig(config(url, account))
}

// allAccounts pages through ListAccounts, counting the pages.
func allAccounts(t *testing.T, oc *organizations.Client, maxResults *int32) (ids []string, pages int) {
	t.Helper()
	p := organizations.NewListAccountsPaginator(oc, &organizations.ListAccountsInput{MaxResults: maxResults})
	for p.HasMorePages() {
		out, err := p.NextPage(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, a := range out.Accounts {
			ids = append(ids, aws.ToString(a.Id))
		}
	}
	return ids, pages
}

// Organizations API Reference, ListAccounts: MaxResults is 1 to 20, pages
// are continued with NextToken, and a NextToken the operation did not give
// is InvalidInputException.
func TestOrganizationsListAccountsPagesAtMostTwenty(t *testing.T) {
	s, url := startSim(t)
	var accounts []string
	for i := range 44 {
		accounts = append(accounts, fmt.Sprintf(`{"id": "%012d"}`, 600000000000+i))
	}
	world := `{"organizations": [{"management_account": "` + owner + `", "accounts": [` + strings.Join(accounts[:30], ",") + `],
	  "organizational_units": [{"name": "a", "organizational_units": [{"name": "b", "accounts": [` + strings.Join(accounts[30:], ",") + `]}]}]}]}`
	if err := s.LoadWorld(strings.NewReader(world)); err != nil {
		t.Fatal(err)
	}
	oc := orgClient(url, owner)
	ctx := context.Background()

	first, err := oc.ListAccounts(ctx, &organizations.ListAccountsInput{})
	if err != nil || len(first.Accounts) != 20 || first.NextToken == nil {
		t.Fatalf("first page without MaxResults: %v, %d accounts, token %v", err, len(first.Accounts), first.NextToken)
	}
	ids, pages := allAccounts(t, oc, nil)
	if len(ids) != 45 || pages != 3 {
		t.Errorf("ListAccounts: %d accounts in %d pages, want 45 (the management account too) in 3", len(ids), pages)
	}
	seen := map[string]bool{}
	for _, id := range ids {
		if seen[id] {
			t.Errorf("%s listed twice", id)
		}
		seen[id] = true
	}
	if ids, pages := allAccounts(t, oc, aws.Int32(7)); len(ids) != 45 || pages != 7 {
		t.Errorf("MaxResults 7: %d accounts in %d pages, want 45 in 7", len(ids), pages)
	}

	var invalid *orgtypes.InvalidInputException
	_, err = oc.ListAccounts(ctx, &organizations.ListAccountsInput{MaxResults: aws.Int32(21)})
	if !errors.As(err, &invalid) || invalid.Reason != orgtypes.InvalidInputExceptionReasonMaxValueExceeded {
		t.Errorf("MaxResults 21: %v", err)
	}
	_, err = oc.ListAccounts(ctx, &organizations.ListAccountsInput{NextToken: aws.String("not-a-token")})
	if !errors.As(err, &invalid) || invalid.Reason != orgtypes.InvalidInputExceptionReasonInvalidPaginationToken {
		t.Errorf("a made-up NextToken: %v", err)
	}
	// A token is the operation's own.
	children, err := oc.ListChildren(ctx, &organizations.ListChildrenInput{ParentId: aws.String(s.mustOrg(t, owner).Root.ID), ChildType: orgtypes.ChildTypeAccount})
	if err != nil || children.NextToken == nil {
		t.Fatalf("ListChildren of the root: %v", err)
	}
	if _, err := oc.ListAccounts(ctx, &organizations.ListAccountsInput{NextToken: children.NextToken}); !errors.As(err, &invalid) {
		t.Errorf("ListChildren's token given to ListAccounts: %v", err)
	}
}

func (s *Server) mustOrg(t *testing.T, account string) Organization {
	t.Helper()
	o, ok := s.Organization(account)
	if !ok {
		t.Fatalf("%s is in no organization", account)
	}
	return o
}

// Organizations API Reference, ListChildren and ListParents ("traverse the
// tree structure"), ListAccountsForParent (the accounts directly in the
// parent, not in its child OUs), DescribeOrganizationalUnit; unknown ids
// are ParentNotFoundException, ChildNotFoundException and
// OrganizationalUnitNotFoundException.
func TestOrganizationsTreeWalkReachesNestedOUs(t *testing.T) {
	_, url := startOrgSim(t)
	oc := orgClient(url, owner)
	ctx := context.Background()

	roots, err := oc.ListRoots(ctx, &organizations.ListRootsInput{})
	if err != nil || len(roots.Roots) != 1 || aws.ToString(roots.Roots[0].Id) != orgRoot || aws.ToString(roots.Roots[0].Name) != "Root" ||
		len(roots.Roots[0].PolicyTypes) != 1 || roots.Roots[0].PolicyTypes[0].Type != orgtypes.PolicyTypeServiceControlPolicy {
		t.Fatalf("ListRoots: %v %+v", err, roots)
	}
	// Walk the tree from the root, as a client resolving "every account of
	// an OU and below" does.
	found := map[string]string{} // account → parent
	var walk func(parent string)
	walk = func(parent string) {
		for _, childType := range []orgtypes.ChildType{orgtypes.ChildTypeAccount, orgtypes.ChildTypeOrganizationalUnit} {
			p := organizations.NewListChildrenPaginator(oc, &organizations.ListChildrenInput{ParentId: aws.String(parent), ChildType: childType})
			for p.HasMorePages() {
				out, err := p.NextPage(ctx)
				if err != nil {
					t.Fatalf("ListChildren %s %s: %v", parent, childType, err)
				}
				for _, c := range out.Children {
					if c.Type != childType {
						t.Errorf("child %s of type %s listed for %s", aws.ToString(c.Id), c.Type, childType)
					}
					if childType == orgtypes.ChildTypeAccount {
						found[aws.ToString(c.Id)] = parent
					} else {
						walk(aws.ToString(c.Id))
					}
				}
			}
		}
	}
	walk(orgRoot)
	want := map[string]string{owner: orgRoot, delegate: orgRoot, prodAcct: prodOU, target: webOU, devAcct: devOU, suspended: devOU}
	if fmt.Sprint(found) != fmt.Sprint(want) {
		t.Errorf("walk found %v, want %v", found, want)
	}

	direct, err := oc.ListAccountsForParent(ctx, &organizations.ListAccountsForParentInput{ParentId: aws.String(prodOU)})
	if err != nil || len(direct.Accounts) != 1 || aws.ToString(direct.Accounts[0].Id) != prodAcct {
		t.Errorf("ListAccountsForParent prod (its own account, not web's): %v %+v", err, direct)
	}
	ous, err := oc.ListOrganizationalUnitsForParent(ctx, &organizations.ListOrganizationalUnitsForParentInput{ParentId: aws.String(prodOU)})
	if err != nil || len(ous.OrganizationalUnits) != 1 || aws.ToString(ous.OrganizationalUnits[0].Name) != "web" ||
		aws.ToString(ous.OrganizationalUnits[0].Arn) != "arn:aws:organizations::"+owner+":ou/"+orgID+"/"+webOU {
		t.Errorf("ListOrganizationalUnitsForParent prod: %v %+v", err, ous)
	}
	parents, err := oc.ListParents(ctx, &organizations.ListParentsInput{ChildId: aws.String(target)})
	if err != nil || len(parents.Parents) != 1 || aws.ToString(parents.Parents[0].Id) != webOU || parents.Parents[0].Type != orgtypes.ParentTypeOrganizationalUnit {
		t.Errorf("ListParents of the target: %v %+v", err, parents)
	}
	parents, err = oc.ListParents(ctx, &organizations.ListParentsInput{ChildId: aws.String(prodOU)})
	if err != nil || len(parents.Parents) != 1 || aws.ToString(parents.Parents[0].Id) != orgRoot || parents.Parents[0].Type != orgtypes.ParentTypeRoot {
		t.Errorf("ListParents of prod: %v %+v", err, parents)
	}
	ou, err := oc.DescribeOrganizationalUnit(ctx, &organizations.DescribeOrganizationalUnitInput{OrganizationalUnitId: aws.String(webOU)})
	if err != nil || aws.ToString(ou.OrganizationalUnit.Name) != "web" || aws.ToString(ou.OrganizationalUnit.Path) != webOUPath {
		t.Errorf("DescribeOrganizationalUnit web: %v %+v", err, ou)
	}
	acct, err := oc.DescribeAccount(ctx, &organizations.DescribeAccountInput{AccountId: aws.String(target)})
	if err != nil || aws.ToString(acct.Account.Email) != "web@example.com" || aws.ToString(acct.Account.Arn) != "arn:aws:organizations::"+owner+":account/"+orgID+"/"+target ||
		acct.Account.Status != orgtypes.AccountStatusActive || acct.Account.JoinedMethod != orgtypes.AccountJoinedMethodInvited || acct.Account.JoinedTimestamp == nil {
		t.Errorf("DescribeAccount target: %v %+v", err, acct)
	}

	for name, call := range map[string]func() error{
		"ParentNotFoundException": func() error {
			_, err := oc.ListChildren(ctx, &organizations.ListChildrenInput{ParentId: aws.String("ou-ex12-nothere1"), ChildType: orgtypes.ChildTypeAccount})
			return err
		},
		"ChildNotFoundException": func() error {
			_, err := oc.ListParents(ctx, &organizations.ListParentsInput{ChildId: aws.String(outsider)})
			return err
		},
		"OrganizationalUnitNotFoundException": func() error {
			_, err := oc.DescribeOrganizationalUnit(ctx, &organizations.DescribeOrganizationalUnitInput{OrganizationalUnitId: aws.String("ou-ex12-nothere1")})
			return err
		},
		"AccountNotFoundException": func() error {
			_, err := oc.DescribeAccount(ctx, &organizations.DescribeAccountInput{AccountId: aws.String(outsider)})
			return err
		},
		"InvalidInputException": func() error {
			_, err := oc.ListChildren(ctx, &organizations.ListChildrenInput{ParentId: aws.String("prod"), ChildType: orgtypes.ChildTypeAccount})
			return err
		},
	} {
		if err := call(); apiCode(err) != name {
			t.Errorf("want %s, got %v", name, err)
		}
	}
}

// Organizations API Reference: the List and Describe calls that read the
// organization work from the management account or a delegated
// administrator; a member gets AccessDeniedException, an account in no
// organization AWSOrganizationsNotInUseException; DescribeOrganization
// works from any member. A role session needs the action in its own
// policies.
func TestOrganizationsReadsNeedManagementOrDelegatedAdministrator(t *testing.T) {
	s, url := startOrgSim(t)
	ctx := context.Background()

	if ids, _ := allAccounts(t, orgClient(url, delegate), nil); len(ids) != 6 {
		t.Errorf("the delegated administrator lists %d accounts, want 6", len(ids))
	}
	_, err := orgClient(url, target).ListAccounts(ctx, &organizations.ListAccountsInput{})
	var denied *orgtypes.AccessDeniedException
	if !errors.As(err, &denied) || aws.ToString(denied.Message) != "You don't have permissions to access this resource." {
		t.Errorf("a member's ListAccounts: %v", err)
	}
	for name, call := range map[string]func(*organizations.Client) error{
		"ListRoots": func(oc *organizations.Client) error {
			_, err := oc.ListRoots(ctx, &organizations.ListRootsInput{})
			return err
		},
		"ListChildren": func(oc *organizations.Client) error {
			_, err := oc.ListChildren(ctx, &organizations.ListChildrenInput{ParentId: aws.String(orgRoot), ChildType: orgtypes.ChildTypeAccount})
			return err
		},
		"DescribeAccount": func(oc *organizations.Client) error {
			_, err := oc.DescribeAccount(ctx, &organizations.DescribeAccountInput{AccountId: aws.String(target)})
			return err
		},
		"CreateOrganizationalUnit by the delegated administrator": func(*organizations.Client) error {
			_, err := orgClient(url, delegate).CreateOrganizationalUnit(ctx, &organizations.CreateOrganizationalUnitInput{ParentId: aws.String(orgRoot), Name: aws.String("x")})
			return err
		},
	} {
		if err := call(orgClient(url, prodAcct)); apiCode(err) != "AccessDeniedException" {
			t.Errorf("%s from a member: %v", name, err)
		}
	}
	for _, acct := range []string{target, owner, delegate} {
		out, err := orgClient(url, acct).DescribeOrganization(ctx, &organizations.DescribeOrganizationInput{})
		if err != nil || aws.ToString(out.Organization.Id) != orgID || aws.ToString(out.Organization.Arn) != orgARN ||
			aws.ToString(out.Organization.MasterAccountId) != owner || out.Organization.FeatureSet != orgtypes.OrganizationFeatureSetAll {
			t.Errorf("DescribeOrganization from %s: %v %+v", acct, err, out)
		}
	}
	var notInUse *orgtypes.AWSOrganizationsNotInUseException
	if _, err := orgClient(url, outsider).DescribeOrganization(ctx, &organizations.DescribeOrganizationInput{}); !errors.As(err, &notInUse) {
		t.Errorf("DescribeOrganization from an account in no organization: %v", err)
	}
	if _, err := orgClient(url, outsider).ListAccounts(ctx, &organizations.ListAccountsInput{}); !errors.As(err, &notInUse) {
		t.Errorf("ListAccounts from an account in no organization: %v", err)
	}

	// A session of a role of the management account acts for it, within
	// what its policies allow.
	reader := roleSession(t, s, url, owner, "reader", `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["organizations:List*","organizations:Describe*"],"Resource":"*"}]}`)
	if ids, _ := allAccounts(t, organizations.NewFromConfig(reader), nil); len(ids) != 6 {
		t.Errorf("a role of the management account lists %d accounts, want 6", len(ids))
	}
	ec2Only := roleSession(t, s, url, owner, "ec2only", `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ec2:*","Resource":"*"}]}`)
	if _, err := organizations.NewFromConfig(ec2Only).ListAccounts(ctx, &organizations.ListAccountsInput{}); apiCode(err) != "AccessDeniedException" {
		t.Errorf("a role without organizations:ListAccounts: %v", err)
	}
}

// roleSession makes role/name in the account, trusting the account, with
// this inline policy, and returns credentials of a session of it.
func roleSession(t *testing.T, s *Server, url, account, name, policy string) aws.Config {
	t.Helper()
	arn := "arn:aws:iam::" + account + ":role/" + name
	s.mu.Lock()
	s.world.roles[arn] = &role{arn: arn, name: name, path: "/", account: account,
		trustPolicy:    `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::` + account + `:root"},"Action":"sts:AssumeRole"}]}`,
		inlinePolicies: map[string]string{"p": policy}}
	s.mu.Unlock()
	out, err := sts.NewFromConfig(config(url, account)).AssumeRole(context.Background(), &sts.AssumeRoleInput{RoleArn: aws.String(arn), RoleSessionName: aws.String(name)})
	if err != nil {
		t.Fatal(err)
	}
	cfg := config(url, account)
	cfg.Credentials = credentials.NewStaticCredentialsProvider(aws.ToString(out.Credentials.AccessKeyId), aws.ToString(out.Credentials.SecretAccessKey), aws.ToString(out.Credentials.SessionToken))
	return cfg
}

// Organizations User Guide, "Monitor the state of your AWS accounts": a
// SUSPENDED account is reported as such (Status and State) and is
// unusable: its calls are refused, its roles cannot be assumed, and its
// Auto Scaling groups launch nothing.
func TestOrganizationsSuspendedAccountReportedAndUnusable(t *testing.T) {
	s, url := startOrgSim(t)
	ctx := context.Background()
	out, err := orgClient(url, owner).DescribeAccount(ctx, &organizations.DescribeAccountInput{AccountId: aws.String(suspended)})
	if err != nil || out.Account.Status != orgtypes.AccountStatusSuspended || out.Account.State != orgtypes.AccountStateSuspended ||
		out.Account.JoinedMethod != orgtypes.AccountJoinedMethodCreated {
		t.Fatalf("DescribeAccount of the suspended account: %v %+v", err, out)
	}
	if _, err := ec2.NewFromConfig(config(url, suspended)).DescribeImages(ctx, &ec2.DescribeImagesInput{}); apiCode(err) != "Blocked" {
		t.Errorf("EC2 call of a suspended account: %v", err)
	}
	if _, err := kms.NewFromConfig(config(url, suspended)).ListAliases(ctx, &kms.ListAliasesInput{}); apiCode(err) != "AccessDeniedException" {
		t.Errorf("KMS call of a suspended account: %v", err)
	}
	if _, err := sts.NewFromConfig(config(url, suspended)).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{}); apiCode(err) != "AccessDenied" {
		t.Errorf("STS call of a suspended account: %v", err)
	}
	arn := "arn:aws:iam::" + suspended + ":role/amigate"
	s.mu.Lock()
	s.world.roles[arn] = &role{arn: arn, name: "amigate", path: "/", account: suspended, inlinePolicies: map[string]string{},
		trustPolicy: `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::` + owner + `:root"},"Action":"sts:AssumeRole"}]}`}
	s.mu.Unlock()
	if _, err := sts.NewFromConfig(config(url, owner)).AssumeRole(ctx, &sts.AssumeRoleInput{RoleArn: aws.String(arn), RoleSessionName: aws.String("x")}); apiCode(err) != "AccessDenied" {
		t.Errorf("AssumeRole into a suspended account: %v", err)
	}

	// Back to ACTIVE, it works again; the call log has the refusals.
	if err := s.SetAccountStatus(suspended, "ACTIVE"); err != nil {
		t.Fatal(err)
	}
	if _, err := ec2.NewFromConfig(config(url, suspended)).DescribeImages(ctx, &ec2.DescribeImagesInput{}); err != nil {
		t.Errorf("EC2 call once active again: %v", err)
	}
	refused := 0
	for _, c := range s.Calls() {
		if c.Account == suspended && (c.ErrorCode == "Blocked" || c.ErrorCode == "AccessDeniedException" || c.ErrorCode == "AccessDenied") {
			refused++
		}
	}
	if refused != 3 {
		t.Errorf("the call log has %d refused calls of the suspended account, want 3", refused)
	}
	if err := s.SetAccountStatus(outsider, "SUSPENDED"); err == nil {
		t.Error("SetAccountStatus of an account in no organization succeeded")
	}
}

// orgImage makes, in the owner account, an AMI encrypted with a new key of
// this policy, with this launch permission.
func orgImage(t *testing.T, url, policy string, perm ec2types.LaunchPermission) (keyARN, amiID string) {
	t.Helper()
	ctx := context.Background()
	keyARN = newKeyWith(t, url, policy)
	ec := ec2.NewFromConfig(config(url, owner))
	vol, err := ec.CreateVolume(ctx, &ec2.CreateVolumeInput{AvailabilityZone: aws.String("us-east-1a"), Encrypted: aws.Bool(true), KmsKeyId: aws.String(keyARN)})
	if err != nil {
		t.Fatal(err)
	}
	snap, err := ec.CreateSnapshot(ctx, &ec2.CreateSnapshotInput{VolumeId: vol.VolumeId})
	if err != nil {
		t.Fatal(err)
	}
	img, err := ec.RegisterImage(ctx, &ec2.RegisterImageInput{Name: aws.String("golden"), RootDeviceName: aws.String("/dev/xvda"),
		BlockDeviceMappings: []ec2types.BlockDeviceMapping{{DeviceName: aws.String("/dev/xvda"), Ebs: &ec2types.EbsBlockDevice{SnapshotId: snap.SnapshotId}}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ec.ModifyImageAttribute(ctx, &ec2.ModifyImageAttributeInput{ImageId: img.ImageId,
		LaunchPermission: &ec2types.LaunchPermissionModifications{Add: []ec2types.LaunchPermission{perm}}}); err != nil {
		t.Fatal(err)
	}
	return keyARN, aws.ToString(img.ImageId)
}

// launchState runs one instance of the image from the account and returns
// the instance's state after the launch.
func launchState(t *testing.T, url, account, amiID string) ec2types.InstanceStateName {
	t.Helper()
	ctx := context.Background()
	ec := ec2.NewFromConfig(config(url, account))
	run, err := ec.RunInstances(ctx, &ec2.RunInstancesInput{ImageId: aws.String(amiID), MinCount: aws.Int32(1), MaxCount: aws.Int32(1)})
	if err != nil {
		t.Fatalf("RunInstances from %s: %v", account, err)
	}
	out, err := ec.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{aws.ToString(run.Instances[0].InstanceId)}})
	if err != nil {
		t.Fatal(err)
	}
	return out.Reservations[0].Instances[0].State.Name
}

// orgPolicy is a key policy: the owner, and any principal whose request
// meets the condition.
func orgPolicy(condition string) string {
	return `{"Version":"2012-10-17","Statement":[` + ownerRootStatement + `,
	 {"Sid":"Org","Effect":"Allow","Principal":{"AWS":"*"},"Action":["kms:Decrypt","kms:DescribeKey","kms:CreateGrant","kms:GenerateDataKey*","kms:ReEncrypt*"],"Resource":"*",
	  "Condition":` + condition + `}]}`
}

// IAM User Guide, "AWS global condition context keys", aws:PrincipalOrgID:
// the organization of the principal's account, in every request of a
// member — direct calls and those EC2 makes for a launch — and absent for
// an account in no organization.
func TestKeyPolicyPrincipalOrgIDAllowsMembersOnly(t *testing.T) {
	_, url := startOrgSim(t)
	policy := orgPolicy(`{"StringEquals":{"aws:PrincipalOrgID":"` + orgID + `"}}`)
	keyARN, amiID := orgImage(t, url, policy, ec2types.LaunchPermission{Group: ec2types.PermissionGroupAll})

	for acct, want := range map[string]bool{target: true, devAcct: true, outsider: false} {
		if err := describeKey(config(url, acct), keyARN); (err == nil) != want {
			t.Errorf("DescribeKey from %s: %v, want allowed %v", acct, err, want)
		}
		state := launchState(t, url, acct, amiID)
		if (state == ec2types.InstanceStateNameRunning) != want {
			t.Errorf("launch from %s: %s, want running %v", acct, state, want)
		}
	}
	// A condition naming another organization allows no one.
	other := newKeyWith(t, url, orgPolicy(`{"StringEquals":{"aws:PrincipalOrgID":"o-otherorg000"}}`))
	if err := describeKey(config(url, target), other); apiCode(err) != "AccessDeniedException" {
		t.Errorf("DescribeKey with another organization's id: %v", err)
	}
	// Null tests presence: the key is absent for the outsider only.
	absent := newKeyWith(t, url, orgPolicy(`{"Null":{"aws:PrincipalOrgID":"true"}}`))
	if describeKey(config(url, outsider), absent) != nil || describeKey(config(url, target), absent) == nil {
		t.Error("aws:PrincipalOrgID is present for an account in no organization, or absent for a member")
	}
}

// A role's own policies are read with what the request says of the
// principal, aws:PrincipalOrgID included, in every operation that checks
// them alone: IAM's ListRoles and SimulatePrincipalPolicy, KMS's
// ListAliases, Organizations' calls.
func TestIdentityPolicyConditionsSeePrincipalOrgID(t *testing.T) {
	s, url := startOrgSim(t)
	ctx := context.Background()
	for org, want := range map[string]bool{orgID: true, "o-otherorg000": false} {
		name := "reader-" + fmt.Sprint(want)
		cfg := roleSession(t, s, url, target, name, `{"Version":"2012-10-17","Statement":[{"Effect":"Allow",
		 "Action":["iam:ListRoles","iam:SimulatePrincipalPolicy","kms:ListAliases","organizations:DescribeOrganization"],"Resource":"*",
		 "Condition":{"StringEquals":{"aws:PrincipalOrgID":"`+org+`"}}}]}`)
		for call, err := range map[string]error{
			"iam:ListRoles": func() error { _, err := iam.NewFromConfig(cfg).ListRoles(ctx, &iam.ListRolesInput{}); return err }(),
			"iam:SimulatePrincipalPolicy": func() error {
				_, err := iam.NewFromConfig(cfg).SimulatePrincipalPolicy(ctx, &iam.SimulatePrincipalPolicyInput{
					PolicySourceArn: aws.String("arn:aws:iam::" + target + ":role/" + name), ActionNames: []string{"kms:Decrypt"}})
				return err
			}(),
			"kms:ListAliases": func() error { _, err := kms.NewFromConfig(cfg).ListAliases(ctx, &kms.ListAliasesInput{}); return err }(),
			"organizations:DescribeOrganization": func() error {
				_, err := organizations.NewFromConfig(cfg).DescribeOrganization(ctx, &organizations.DescribeOrganizationInput{})
				return err
			}(),
		} {
			if (err == nil) != want || (!want && !strings.Contains(apiCode(err), "AccessDenied")) {
				t.Errorf("%s allowed on aws:PrincipalOrgID %s: %v, want allowed %v", call, org, err, want)
			}
		}
	}
}

// The Auto Scaling service-linked role is a role of the member account, so
// the requests Auto Scaling makes as it carry the account's organization.
func TestAutoScalingServiceLinkedRoleCarriesPrincipalOrgID(t *testing.T) {
	_, url := startOrgSim(t)
	ctx := context.Background()
	for condition, want := range map[string]bool{
		`{"StringEquals":{"aws:PrincipalOrgID":"` + orgID + `"}}`: true,
		`{"StringEquals":{"aws:PrincipalOrgID":"o-otherorg000"}}`: false,
	} {
		// The group is the owner's, so the key's policy alone decides.
		_, amiID := orgImage(t, url, orgPolicy(condition), ec2types.LaunchPermission{UserId: aws.String(target)})
		ec := ec2.NewFromConfig(config(url, owner))
		lt, err := ec.CreateLaunchTemplate(ctx, &ec2.CreateLaunchTemplateInput{LaunchTemplateName: aws.String("lt-" + fmt.Sprint(want)),
			LaunchTemplateData: &ec2types.RequestLaunchTemplateData{ImageId: aws.String(amiID)}})
		if err != nil {
			t.Fatal(err)
		}
		// The owner's root statement names the account, which delegates to
		// IAM; the service-linked role has no KMS permission, so only the
		// organization statement can let it in.
		asg := autoscaling.NewFromConfig(config(url, owner))
		name := "web-" + fmt.Sprint(want)
		if _, err := asg.CreateAutoScalingGroup(ctx, &autoscaling.CreateAutoScalingGroupInput{AutoScalingGroupName: aws.String(name), MinSize: aws.Int32(0), MaxSize: aws.Int32(1),
			DesiredCapacity: aws.Int32(1), AvailabilityZones: []string{"us-east-1a"}, LaunchTemplate: &astypes.LaunchTemplateSpecification{LaunchTemplateId: lt.LaunchTemplate.LaunchTemplateId}}); err != nil {
			t.Fatal(err)
		}
		groups, err := asg.DescribeAutoScalingGroups(ctx, &autoscaling.DescribeAutoScalingGroupsInput{AutoScalingGroupNames: []string{name}})
		if err != nil {
			t.Fatal(err)
		}
		if got := len(groups.AutoScalingGroups[0].Instances) == 1; got != want {
			t.Errorf("condition %s: the group launched %v, want %v", condition, got, want)
		}
	}
}

// IAM User Guide, aws:PrincipalOrgPaths: multivalued, the path from the
// organization through the root to the account's OU, ending with '/';
// ForAnyValue:StringLike with "…/ou-prod/*" matches an account of prod or
// of any OU below it, and no account of a sibling OU.
func TestKeyPolicyPrincipalOrgPathsMatchesOUAndItsChildren(t *testing.T) {
	s, url := startOrgSim(t)
	if got := s.mustOrg(t, target).Accounts[target].PrincipalOrgPath; got != webOUPath {
		t.Fatalf("the target's aws:PrincipalOrgPaths is %q, want %q", got, webOUPath)
	}
	policy := orgPolicy(`{"ForAnyValue:StringLike":{"aws:PrincipalOrgPaths":["` + prodOUPath + `*"]}}`)
	keyARN, amiID := orgImage(t, url, policy, ec2types.LaunchPermission{OrganizationArn: aws.String(orgARN)})
	for acct, want := range map[string]bool{target: true, prodAcct: true, devAcct: false, owner: true, delegate: false} {
		if acct != owner {
			if err := describeKey(config(url, acct), keyARN); (err == nil) != want {
				t.Errorf("DescribeKey from %s: %v, want allowed %v", acct, err, want)
			}
		}
		if acct == owner {
			continue // the owner's root statement lets it in anyway
		}
		if state := launchState(t, url, acct, amiID); (state == ec2types.InstanceStateNameRunning) != want {
			t.Errorf("launch from %s: %s, want running %v", acct, state, want)
		}
	}
	// StringEquals on the exact path of web: only web's accounts.
	exact := newKeyWith(t, url, orgPolicy(`{"ForAnyValue:StringEquals":{"aws:PrincipalOrgPaths":"`+webOUPath+`"}}`))
	if describeKey(config(url, target), exact) != nil || describeKey(config(url, prodAcct), exact) == nil {
		t.Error("ForAnyValue:StringEquals on web's path: the target refused or prod's account allowed")
	}
	// An account in no organization has no path: ForAnyValue is false.
	if describeKey(config(url, outsider), keyARN) == nil {
		t.Error("an account in no organization matched aws:PrincipalOrgPaths")
	}
}

// EC2 User Guide, "Share an AMI with organizations or OUs": an AMI shared
// with an OU reaches the accounts of that OU and of every OU below it, and
// no other; shared with an organization, every member. The owner may name
// an organization it is not in; a malformed ARN is
// InvalidAMIAttributeItemValue.
func TestImageSharedWithOUReachesChildOUsOnly(t *testing.T) {
	s, url := startOrgSim(t)
	ctx := context.Background()
	_, amiID := orgImage(t, url, orgPolicy(`{"StringEquals":{"aws:PrincipalOrgID":"`+orgID+`"}}`), ec2types.LaunchPermission{OrganizationalUnitArn: aws.String(prodOUARN)})

	for acct, want := range map[string]bool{target: true, prodAcct: true, devAcct: false, delegate: false, outsider: false} {
		ec := ec2.NewFromConfig(config(url, acct))
		shared, err := ec.DescribeImages(ctx, &ec2.DescribeImagesInput{ExecutableUsers: []string{"self"}})
		if err != nil || (len(shared.Images) == 1) != want {
			t.Errorf("DescribeImages ExecutableUsers self from %s: %v, %d images, want shared %v", acct, err, len(shared.Images), want)
		}
		_, err = ec.DescribeImages(ctx, &ec2.DescribeImagesInput{ImageIds: []string{amiID}})
		if (err == nil) != want || (!want && apiCode(err) != "InvalidAMIID.NotFound") {
			t.Errorf("DescribeImages by id from %s: %v, want visible %v", acct, err, want)
		}
		if want {
			if state := launchState(t, url, acct, amiID); state != ec2types.InstanceStateNameRunning {
				t.Errorf("launch from %s: %s", acct, state)
			}
		} else if _, err := ec.RunInstances(ctx, &ec2.RunInstancesInput{ImageId: aws.String(amiID), MinCount: aws.Int32(1), MaxCount: aws.Int32(1)}); apiCode(err) != "InvalidAMIID.NotFound" {
			t.Errorf("RunInstances from %s: %v, want InvalidAMIID.NotFound", acct, err)
		}
	}
	// Moving an account moves what it may launch.
	if _, err := orgClient(url, owner).MoveAccount(ctx, &organizations.MoveAccountInput{AccountId: aws.String(devAcct),
		SourceParentId: aws.String(devOU), DestinationParentId: aws.String(webOU)}); err != nil {
		t.Fatal(err)
	}
	if state := launchState(t, url, devAcct, amiID); state != ec2types.InstanceStateNameRunning {
		t.Errorf("launch from the account moved under prod/web: %s", state)
	}

	// DescribeImageAttribute shows the OU; ExecutableUsers by account id
	// counts the OU too.
	ec := ec2.NewFromConfig(config(url, owner))
	attr, err := ec.DescribeImageAttribute(ctx, &ec2.DescribeImageAttributeInput{ImageId: aws.String(amiID), Attribute: ec2types.ImageAttributeNameLaunchPermission})
	if err != nil || len(attr.LaunchPermissions) != 1 || aws.ToString(attr.LaunchPermissions[0].OrganizationalUnitArn) != prodOUARN {
		t.Errorf("DescribeImageAttribute: %v %+v", err, attr)
	}
	byID, err := ec.DescribeImages(ctx, &ec2.DescribeImagesInput{ExecutableUsers: []string{target}, Owners: []string{"self"}})
	if err != nil || len(byID.Images) != 1 {
		t.Errorf("DescribeImages ExecutableUsers %s: %v %+v", target, err, byID)
	}

	// Shared with the whole organization: every member, no outsider.
	if _, err := ec.ModifyImageAttribute(ctx, &ec2.ModifyImageAttributeInput{ImageId: aws.String(amiID), LaunchPermission: &ec2types.LaunchPermissionModifications{
		Add: []ec2types.LaunchPermission{{OrganizationArn: aws.String(orgARN)}}}}); err != nil {
		t.Fatal(err)
	}
	for acct, want := range map[string]bool{delegate: true, prodAcct: true, outsider: false} {
		_, err := ec2.NewFromConfig(config(url, acct)).DescribeImages(ctx, &ec2.DescribeImagesInput{ImageIds: []string{amiID}})
		if (err == nil) != want {
			t.Errorf("image shared with the organization, DescribeImages from %s: %v, want visible %v", acct, err, want)
		}
	}

	// An owner in no organization shares with one; ARNs must be ARNs.
	s.mu.Lock()
	delete(s.world.orgAccounts, owner) // the owner leaves (as if it had been removed)
	s.mu.Unlock()
	for _, bad := range []ec2types.LaunchPermission{{OrganizationArn: aws.String(orgID)}, {OrganizationArn: aws.String("arn:aws:organizations::" + owner + ":account/" + orgID + "/" + target)},
		{OrganizationalUnitArn: aws.String(prodOU)}} {
		_, err := ec.ModifyImageAttribute(ctx, &ec2.ModifyImageAttributeInput{ImageId: aws.String(amiID), LaunchPermission: &ec2types.LaunchPermissionModifications{Add: []ec2types.LaunchPermission{bad}}})
		if apiCode(err) != "InvalidAMIAttributeItemValue" {
			t.Errorf("launch permission %+v: %v, want InvalidAMIAttributeItemValue", bad, err)
		}
	}
	if _, err := ec.ModifyImageAttribute(ctx, &ec2.ModifyImageAttributeInput{ImageId: aws.String(amiID), LaunchPermission: &ec2types.LaunchPermissionModifications{
		Add: []ec2types.LaunchPermission{{OrganizationalUnitArn: aws.String("arn:aws:organizations::123456789012:ou/o-someoneelse/ou-abcd-12345678")}}}}); err != nil {
		t.Errorf("sharing with an OU of an organization the owner is not in: %v", err)
	}

	// A world file shares an image with an OU by its ARN.
	if err := s.LoadWorld(strings.NewReader(`{"images":[{"account":"` + owner + `","region":"us-east-1","name":"from-world","launch_permissions":["` + prodOUARN + `"]}]}`)); err != nil {
		t.Fatal(err)
	}
	for acct, want := range map[string]int{target: 1, delegate: 0} {
		imgs, err := ec2.NewFromConfig(config(url, acct)).DescribeImages(ctx, &ec2.DescribeImagesInput{Filters: []ec2types.Filter{filter("name", "from-world")}})
		if err != nil || len(imgs.Images) != want {
			t.Errorf("the world file's image shared with prod, seen from %s: %v, %d images, want %d", acct, err, len(imgs.Images), want)
		}
	}
}

// A world file declares an organization; the Go API reads its ids back; a
// world that does not load adds nothing.
func TestWorldFileOrganization(t *testing.T) {
	s, url := startSim(t)
	world := `{"organizations": [{"management_account": "` + owner + `",
	  "organizational_units": [{"name": "prod", "accounts": [{"id": "` + prodAcct + `"}],
	    "organizational_units": [{"name": "web", "accounts": [{"id": "` + target + `", "status": "PENDING_CLOSURE"}]}]}]}],
	 "images": [{"account": "` + owner + `", "region": "us-east-1", "name": "golden", "launch_permissions": ["` + devAcct + `"]}]}`
	if err := s.LoadWorld(strings.NewReader(world)); err != nil {
		t.Fatal(err)
	}
	o := s.mustOrg(t, target)
	web := o.OUs["prod/web"]
	if !orgIDRE.MatchString(o.ID) || !rootIDRE.MatchString(o.Root.ID) || !strings.HasPrefix(web.ID, "ou-"+strings.TrimPrefix(o.Root.ID, "r-")+"-") ||
		web.Path != o.ID+"/"+o.Root.ID+"/"+o.OUs["prod"].ID+"/"+web.ID+"/" || o.Accounts[target].PrincipalOrgPath != web.Path ||
		o.Accounts[target].Status != "PENDING_CLOSURE" || o.Accounts[owner].ParentID != o.Root.ID || o.ManagementAccount != owner {
		t.Errorf("Organization: %+v", o)
	}
	// A pending-closure account still works.
	if _, err := ec2.NewFromConfig(config(url, target)).DescribeImages(context.Background(), &ec2.DescribeImagesInput{}); err != nil {
		t.Errorf("a PENDING_CLOSURE account's call: %v", err)
	}
	if _, ok := s.Organization(outsider); ok {
		t.Error("an account in no organization has one")
	}

	for doc, want := range map[string]string{
		`{"organizations":[{"management_account":"` + outsider + `","accounts":[{"id":"` + target + `"}]}]}`:                                             `organizations[0].accounts[0].id "111122223333" is already a member`,
		`{"organizations":[{"management_account":"` + owner + `"}]}`:                                                                                     `organizations[0].management_account "444455556666" is already a member`,
		`{"organizations":[{"management_account":"` + outsider + `","id":"o-BAD"}]}`:                                                                     `organizations[0].id "o-BAD"`,
		`{"organizations":[{"management_account":"` + outsider + `","root_id":"r-ab12","organizational_units":[{"name":"x","id":"ou-cd34-12345678"}]}]}`: `organizational_units[0].id "ou-cd34-12345678"`,
		`{"organizations":[{"management_account":"` + outsider + `","organizational_units":[{"name":"x"},{"name":"x"}]}]}`:                               `organizational_units[1].name "x"`,
		`{"organizations":[{"management_account":"` + outsider + `","accounts":[{"id":"` + devAcct + `","status":"CLOSED"}]}]}`:                          `accounts[0].status "CLOSED"`,
		`{"organizations":[{"management_account":"` + outsider + `","delegated_administrators":["` + outsider + `"]}]}`:                                  `the management account cannot be a delegated administrator`,
		`{"organizations":[{"management_account":"` + outsider + `","organizational_units":[{"name":"1","organizational_units":[{"name":"2","organizational_units":[{"name":"3","organizational_units":[{"name":"4","organizational_units":[{"name":"5","organizational_units":[{"name":"6"}]}]}]}]}]}]}]}`: `at most 5 levels`,
		`{"images":[{"account":"` + owner + `","region":"us-east-1","name":"x","launch_permissions":["` + orgID + `"]}]}`: `nor an organization's or OU's ARN`,
	} {
		err := s.LoadWorld(strings.NewReader(doc))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", doc, err, want)
		}
	}
	if _, ok := s.Organization(outsider); ok {
		t.Error("a world that did not load left an organization")
	}
	s.mu.Lock()
	n := len(s.world.orgs)
	s.mu.Unlock()
	if n != 1 {
		t.Errorf("%d organizations after the failed loads, want 1", n)
	}
}

// Organizations API Reference: CreateOrganization makes the caller the
// management account (AlreadyInOrganizationException for a member);
// CreateOrganizationalUnit refuses a duplicate name under one parent and a
// sixth level; CreateAccount answers IN_PROGRESS and
// DescribeCreateAccountStatus the new account, which the management
// account administers through OrganizationAccountAccessRole; MoveAccount
// and RemoveAccountFromOrganization are the management account's.
func TestOrganizationsBuiltThroughTheAPI(t *testing.T) {
	s, url := startSim(t)
	ctx := context.Background()
	oc := orgClient(url, outsider)
	created, err := oc.CreateOrganization(ctx, &organizations.CreateOrganizationInput{})
	if err != nil || !orgIDRE.MatchString(aws.ToString(created.Organization.Id)) || aws.ToString(created.Organization.MasterAccountId) != outsider ||
		created.Organization.FeatureSet != orgtypes.OrganizationFeatureSetAll {
		t.Fatalf("CreateOrganization: %v %+v", err, created)
	}
	if _, err := oc.CreateOrganization(ctx, &organizations.CreateOrganizationInput{}); apiCode(err) != "AlreadyInOrganizationException" {
		t.Errorf("CreateOrganization again: %v", err)
	}
	root := s.mustOrg(t, outsider).Root.ID
	parent := root
	for i := 1; i <= 5; i++ {
		ou, err := oc.CreateOrganizationalUnit(ctx, &organizations.CreateOrganizationalUnitInput{ParentId: aws.String(parent), Name: aws.String(fmt.Sprint("level", i))})
		if err != nil {
			t.Fatalf("level %d: %v", i, err)
		}
		if !strings.HasPrefix(aws.ToString(ou.OrganizationalUnit.Id), "ou-"+strings.TrimPrefix(root, "r-")+"-") {
			t.Errorf("OU id %s does not hold the root's", aws.ToString(ou.OrganizationalUnit.Id))
		}
		parent = aws.ToString(ou.OrganizationalUnit.Id)
	}
	var tooDeep *orgtypes.ConstraintViolationException
	if _, err := oc.CreateOrganizationalUnit(ctx, &organizations.CreateOrganizationalUnitInput{ParentId: aws.String(parent), Name: aws.String("level6")}); !errors.As(err, &tooDeep) ||
		tooDeep.Reason != orgtypes.ConstraintViolationExceptionReasonOuDepthLimitExceeded {
		t.Errorf("a sixth level: %v", err)
	}
	if _, err := oc.CreateOrganizationalUnit(ctx, &organizations.CreateOrganizationalUnitInput{ParentId: aws.String(root), Name: aws.String("level1")}); apiCode(err) != "DuplicateOrganizationalUnitException" {
		t.Errorf("a second level1 in the root: %v", err)
	}

	req, err := oc.CreateAccount(ctx, &organizations.CreateAccountInput{AccountName: aws.String("build"), Email: aws.String("build@example.com")})
	if err != nil || req.CreateAccountStatus.State != orgtypes.CreateAccountStateInProgress {
		t.Fatalf("CreateAccount: %v %+v", err, req)
	}
	status, err := oc.DescribeCreateAccountStatus(ctx, &organizations.DescribeCreateAccountStatusInput{CreateAccountRequestId: req.CreateAccountStatus.Id})
	if err != nil || status.CreateAccountStatus.State != orgtypes.CreateAccountStateSucceeded || !validAccount(aws.ToString(status.CreateAccountStatus.AccountId)) {
		t.Fatalf("DescribeCreateAccountStatus: %v %+v", err, status)
	}
	newAcct := aws.ToString(status.CreateAccountStatus.AccountId)
	if _, err := sts.NewFromConfig(config(url, outsider)).AssumeRole(ctx, &sts.AssumeRoleInput{RoleArn: aws.String("arn:aws:iam::" + newAcct + ":role/OrganizationAccountAccessRole"),
		RoleSessionName: aws.String("admin")}); err != nil {
		t.Errorf("AssumeRole into the new account's OrganizationAccountAccessRole: %v", err)
	}
	if _, err := oc.MoveAccount(ctx, &organizations.MoveAccountInput{AccountId: aws.String(newAcct), SourceParentId: aws.String(root), DestinationParentId: aws.String(parent)}); err != nil {
		t.Fatal(err)
	}
	if got := s.mustOrg(t, newAcct).Accounts[newAcct].ParentID; got != parent {
		t.Errorf("after MoveAccount the account is in %s, want %s", got, parent)
	}
	for code, in := range map[string]*organizations.MoveAccountInput{
		"SourceParentNotFoundException":      {AccountId: aws.String(newAcct), SourceParentId: aws.String(root), DestinationParentId: aws.String(parent)},
		"DestinationParentNotFoundException": {AccountId: aws.String(newAcct), SourceParentId: aws.String(parent), DestinationParentId: aws.String("r-zzzz")},
		"DuplicateAccountException":          {AccountId: aws.String(newAcct), SourceParentId: aws.String(parent), DestinationParentId: aws.String(parent)},
		"AccountNotFoundException":           {AccountId: aws.String(target), SourceParentId: aws.String(root), DestinationParentId: aws.String(parent)},
	} {
		if _, err := oc.MoveAccount(ctx, in); apiCode(err) != code {
			t.Errorf("MoveAccount %+v: %v, want %s", in, err, code)
		}
	}
	if _, err := oc.RemoveAccountFromOrganization(ctx, &organizations.RemoveAccountFromOrganizationInput{AccountId: aws.String(outsider)}); apiCode(err) != "MasterCannotLeaveOrganizationException" {
		t.Errorf("removing the management account: %v", err)
	}
	if _, err := orgClient(url, newAcct).RemoveAccountFromOrganization(ctx, &organizations.RemoveAccountFromOrganizationInput{AccountId: aws.String(newAcct)}); apiCode(err) != "AccessDeniedException" {
		t.Errorf("a member removing itself with RemoveAccountFromOrganization: %v", err)
	}
	if _, err := oc.RemoveAccountFromOrganization(ctx, &organizations.RemoveAccountFromOrganizationInput{AccountId: aws.String(newAcct)}); err != nil {
		t.Fatal(err)
	}
	if _, err := orgClient(url, newAcct).DescribeOrganization(ctx, &organizations.DescribeOrganizationInput{}); apiCode(err) != "AWSOrganizationsNotInUseException" {
		t.Errorf("DescribeOrganization from a removed account: %v", err)
	}
}
