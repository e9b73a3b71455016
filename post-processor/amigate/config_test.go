package amigate

import (
	"strings"
	"testing"
	"time"

	"github.com/amigate/packer-plugin-amigate/internal/gate"
	"github.com/amigate/packer-plugin-amigate/keypolicy"
)

func validRaw() map[string]interface{} {
	return map[string]interface{}{
		"region": "us-east-1",
		"target": []map[string]interface{}{
			{"account_id": "111122223333", "role_arn": "arn:aws:iam::111122223333:role/amigate", "autoscaling_groups": []string{"web"}},
		},
	}
}

func TestPrepareDefaults(t *testing.T) {
	var c Config
	o, err := c.Prepare(validRaw())
	if err != nil {
		t.Fatalf("Prepare: %v", err)
	}
	if !o.ShareImage || !o.CreateGrants || o.ShareSnapshots || o.DryRun || o.AllowUnencrypted {
		t.Errorf("boolean defaults wrong: %+v", o)
	}
	if o.KeyPolicy != gate.KeyPolicyPatch || o.TestLaunch != gate.TestLaunchNone || o.TestLaunchTimeout != 10*time.Minute {
		t.Errorf("defaults: key_policy=%q test_launch=%q timeout=%v", o.KeyPolicy, o.TestLaunch, o.TestLaunchTimeout)
	}
	if len(o.Targets) != 1 || o.Targets[0].AccountID != "111122223333" || o.Targets[0].AutoScalingGroups[0] != "web" {
		t.Errorf("targets: %+v", o.Targets)
	}
}

func TestPrepareSettings(t *testing.T) {
	raw := validRaw()
	raw["share_image"] = false
	raw["create_grants"] = false
	raw["key_policy"] = "check"
	raw["grant_from"] = "source"
	raw["dry_run"] = true
	raw["lock_timeout"] = "2m"
	raw["ami_ids"] = map[string]string{"eu-west-1": "ami-0123456789abcdef0"}
	raw["target"] = []map[string]interface{}{{"account_id": "111122223333", "paths": []string{"instance", "copy"}}}
	var c Config
	o, err := c.Prepare(raw)
	if err != nil {
		t.Fatalf("Prepare: %v", err)
	}
	if o.ShareImage || o.CreateGrants || o.KeyPolicy != "check" || o.GrantFrom != "source" || !o.DryRun || o.LockTimeout != 2*time.Minute {
		t.Errorf("settings not applied: %+v", o)
	}
	if !o.ShareSnapshots {
		t.Error("a copy path must imply share_snapshots")
	}
	if got := o.Targets[0].Paths; len(got) != 2 || got[1] != keypolicy.PathCopy {
		t.Errorf("paths = %v", got)
	}
	if o.AMIs["eu-west-1"] != "ami-0123456789abcdef0" {
		t.Errorf("ami_ids = %v", o.AMIs)
	}
}

// Every problem is reported at once, each naming the field and the value.
func TestPrepareValidation(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(map[string]interface{})
		want []string
	}{
		{"short account id", func(r map[string]interface{}) {
			r["target"] = []map[string]interface{}{{"account_id": "12345"}}
		}, []string{`target[0].account_id "12345": not a 12-digit AWS account id`}},
		{"target without account id", func(r map[string]interface{}) {
			r["target"] = []map[string]interface{}{{"regions": []string{"us-east-1"}}}
		}, []string{"target[0].account_id: is required"}},
		{"no target", func(r map[string]interface{}) { delete(r, "target") }, []string{"target: at least one target block"}},
		{"role in another account", func(r map[string]interface{}) {
			r["target"] = []map[string]interface{}{{"account_id": "111122223333", "role_arn": "arn:aws:iam::444455556666:role/x"}}
		}, []string{`target[0].role_arn "arn:aws:iam::444455556666:role/x": is in account 444455556666`}},
		{"not a role ARN", func(r map[string]interface{}) {
			r["target"] = []map[string]interface{}{{"account_id": "111122223333", "role_arn": "arn:aws:iam::111122223333:user/x"}}
		}, []string{`target[0].role_arn "arn:aws:iam::111122223333:user/x": not an IAM role ARN`}},
		{"bad region and path", func(r map[string]interface{}) {
			r["target"] = []map[string]interface{}{{"account_id": "111122223333", "regions": []string{"us-east"}, "paths": []string{"lambda"}}}
		}, []string{`target[0].regions "us-east": not an AWS region`, `target[0].paths "lambda": must be one of asg, instance, copy`}},
		{"bad service-linked role", func(r map[string]interface{}) {
			r["target"] = []map[string]interface{}{{"account_id": "111122223333", "service_linked_role_arns": []string{"arn:aws:iam::111122223333:role/Other"}}}
		}, []string{`target[0].service_linked_role_arns "arn:aws:iam::111122223333:role/Other": not an Auto Scaling service-linked role ARN`}},
		{"groups without role", func(r map[string]interface{}) {
			r["target"] = []map[string]interface{}{{"account_id": "111122223333", "autoscaling_groups": []string{"web"}}}
		}, []string{`target[0].autoscaling_groups "web": reading the groups needs role_arn`}},
		{"duplicate target", func(r map[string]interface{}) {
			r["target"] = []map[string]interface{}{{"account_id": "111122223333"}, {"account_id": "111122223333"}}
		}, []string{`target[1].account_id "111122223333": appears in two target blocks`}},
		{"enums", func(r map[string]interface{}) {
			r["key_policy"] = "rewrite"
			r["grant_from"] = "elsewhere"
			r["test_launch"] = "lambda"
		}, []string{`key_policy "rewrite": must be one of patch, check, ignore`, `grant_from "elsewhere": must be one of target, source`, `test_launch "lambda": must be one of none, asg, instance`}},
		{"test launch asg without groups", func(r map[string]interface{}) {
			r["test_launch"] = "asg"
			r["target"] = []map[string]interface{}{{"account_id": "111122223333"}}
		}, []string{`test_launch = "asg" needs autoscaling_groups and role_arn`}},
		{"duration", func(r map[string]interface{}) {
			r["test_launch_timeout"] = "ten minutes"
			r["test_launch_grant_wait"] = "a while"
			r["lock_timeout"] = "-1m"
		}, []string{`test_launch_timeout "ten minutes": not a duration`, `test_launch_grant_wait "a while": not a duration`, `lock_timeout "-1m": not a positive duration`}},
		{"ami ids", func(r map[string]interface{}) {
			r["ami_ids"] = map[string]string{"mars-1": "ami-12", "us-east-1": "ami-0123456789abcdef0"}
		}, []string{`ami_ids "mars-1": not an AWS region`, `ami_ids[mars-1] "ami-12": not an AMI id`}},
		{"organizations", func(r map[string]interface{}) {
			r["target_organizations"] = []string{"o-abc"}
			r["target_organizational_units"] = []string{"ou-abc"}
		}, []string{`target_organizations "o-abc": not an organization id`, `target_organizational_units "ou-abc": not an organizational unit id`}},
		{"organization targets", func(r map[string]interface{}) {
			r["target_organizational_units"] = []string{"ou-ab12-abcd1234"}
			r["exclude_accounts"] = []string{"12345", "111122223333"}
			r["organization_targets"] = map[string]interface{}{"role_name": "no spaces please", "paths": []string{"teleport"}, "regions": []string{"moon-1"}}
			r["organizations_role_arn"] = "arn:aws:iam::123:role/x"
			r["key_policy_principals"] = "everyone"
		}, []string{`exclude_accounts "12345": not a 12-digit AWS account id`, `exclude_accounts "111122223333": also has a target block`,
			`organization_targets.role_name "no spaces please": not an IAM role name`, `organization_targets.paths "teleport"`,
			`organization_targets.regions "moon-1": not an AWS region`, `organizations_role_arn "arn:aws:iam::123:role/x"`,
			`key_policy_principals "everyone": must be one of auto, accounts, organization`}},
		{"organization targets without organizations", func(r map[string]interface{}) {
			r["exclude_accounts"] = []string{"444455556666"}
			r["organization_targets"] = map[string]interface{}{"role_name": "amigate"}
		}, []string{`exclude_accounts "444455556666": excludes from target_organizations`, `organization_targets: is for the accounts of target_organizations`}},
		{"access", func(r map[string]interface{}) {
			r["region"] = "useast1"
			r["access_key"] = "AKIAEXAMPLE"
			r["max_retries"] = -1
			r["assume_role"] = map[string]interface{}{"role_arn": "nope", "duration_seconds": 60}
		}, []string{`region "useast1": not an AWS region`, "access_key and secret_key: give both or neither", `max_retries "-1"`, `assume_role.role_arn "nope"`, `assume_role.duration_seconds "60"`}},
		{"grant from a target without a role", func(r map[string]interface{}) {
			r["grant_from"] = "target"
			r["target"] = []map[string]interface{}{{"account_id": "111122223333"}}
		}, []string{`target[0].role_arn: grant_from = "target" needs a role`}},
		{"subnet", func(r map[string]interface{}) { r["subnet_id"] = "vpc-1" }, []string{`subnet_id "vpc-1": not a subnet id`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			raw := validRaw()
			tc.edit(raw)
			var c Config
			_, err := c.Prepare(raw)
			if err == nil {
				t.Fatal("Prepare accepted the configuration")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
		})
	}
}

func TestPrepareRejectsUnknownKeys(t *testing.T) {
	raw := validRaw()
	raw["taret"] = "typo"
	var c Config
	if _, err := c.Prepare(raw); err == nil || !strings.Contains(err.Error(), "taret") {
		t.Fatalf("err = %v, want the unknown key named", err)
	}
}
