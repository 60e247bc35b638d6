// Command e2e checks the Go client (protoc-gen-go and protoc-gen-go-grpc
// stubs, package accord/v1) against a real Accord server.
//
//	e2e ADDRESS        (ACCORD_BOOTSTRAP_KEY set)
//
// In a tenant of its own (a fresh random id, so it can run again on the same
// server):
//  1. health: grpc.health.v1 Check("") answers SERVING (waits up to 30 s);
//  2. creates, with the bootstrap key, the tenant and a TENANT_ADMIN key, and
//     with that key a provider and a customer, a service, and a SERVICE_LEVEL
//     agreement with one objective, which it publishes (ACTIVE);
//  3. resolves the customer's entitlement on the service: the objective,
//     traced to the agreement's revision;
//  4. reports two measurements: one accepted, one rejected UNKNOWN_INDICATOR;
//  5. makes a call the server refuses (a party id with capitals) and reads the
//     error's details from grpc-status-details-bin: INVALID_ARGUMENT with a
//     BadRequest field violation on party_id and ErrorInfo(reason
//     INVALID_ARGUMENT, domain accord).
//
// Prints what it checked; exits 1 at the first difference, 2 on bad usage.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"reflect"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	accordv1 "accord/v1"
)

const (
	healthWait   = 30 * time.Second // for the server to turn SERVING
	callTimeout  = 10 * time.Second // for each health check
	checkTimeout = 60 * time.Second // for the calls of steps 2 to 5, together
)

// bearer sends `authorization: Bearer <secret>` with a call. Accord on a
// plaintext port accepts it without transport security; with TLS, the same
// credentials work on a secure connection.
type bearer string

func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(b)}, nil
}

func (bearer) RequireTransportSecurity() bool { return false }

// mismatch is an answer that is not what the check expected.
type mismatch struct{ msg string }

func (m mismatch) Error() string { return m.msg }

func fail(format string, args ...interface{}) {
	panic(mismatch{fmt.Sprintf(format, args...)})
}

func expect(what string, got, want interface{}) {
	if !reflect.DeepEqual(got, want) {
		fail("%s: got %#v, want %#v", what, got, want)
	}
	fmt.Printf("  ok  %s = %#v\n", what, got)
}

// must stops the check at an RPC error.
func must(err error) {
	if err != nil {
		panic(err)
	}
}

func requestID() string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	b[6] = b[6]&0x0f | 0x40 // a version 4 UUID
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

func waitServing(conn *grpc.ClientConn) {
	health := healthpb.NewHealthClient(conn)
	deadline := time.Now().Add(healthWait)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
		response, err := health.Check(ctx, &healthpb.HealthCheckRequest{Service: ""})
		cancel()
		var last string
		switch {
		case err == nil && response.GetStatus() == healthpb.HealthCheckResponse_SERVING:
			expect(`health Check("")`, response.GetStatus().String(), "SERVING")
			return
		case err == nil:
			last = response.GetStatus().String()
		case status.Code(err) == codes.Unavailable:
			last = err.Error()
		default:
			panic(err)
		}
		if time.Now().After(deadline) {
			fail("health: not SERVING after %s (%s)", healthWait, last)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func run(address, bootstrapKey string) {
	conn, err := grpc.Dial(address, grpc.WithInsecure())
	must(err)
	defer conn.Close()

	fmt.Println("1. health")
	waitServing(conn)

	fmt.Println("2. create")
	platform := grpc.PerRPCCredentials(bearer(bootstrapKey))
	ctx, cancel := context.WithTimeout(context.Background(), checkTimeout)
	defer cancel()
	tenantID := "e2e-go-" + requestID()[:8]
	tenant, err := accordv1.NewTenantServiceClient(conn).CreateTenant(ctx, &accordv1.CreateTenantRequest{
		TenantId:  tenantID,
		Tenant:    &accordv1.Tenant{DisplayName: "Go e2e"},
		RequestId: requestID(),
	}, platform)
	must(err)
	expect("tenant.name", tenant.GetName(), "tenants/"+tenantID)

	createdKey, err := accordv1.NewApiKeyServiceClient(conn).CreateApiKey(ctx, &accordv1.CreateApiKeyRequest{
		Parent:    tenant.GetName(),
		ApiKeyId:  "admin",
		ApiKey:    &accordv1.ApiKey{DisplayName: "e2e admin", Role: accordv1.Role_ROLE_TENANT_ADMIN},
		RequestId: requestID(),
	}, platform)
	must(err)
	expect("api_key.role", createdKey.GetApiKey().GetRole().String(), "ROLE_TENANT_ADMIN")
	admin := grpc.PerRPCCredentials(bearer(createdKey.GetSecret()))

	parties := accordv1.NewPartyServiceClient(conn)
	party := func(id string, kind accordv1.PartyKind) *accordv1.Party {
		created, err := parties.CreateParty(ctx, &accordv1.CreatePartyRequest{
			Parent:    tenant.GetName(),
			PartyId:   id,
			Party:     &accordv1.Party{DisplayName: id, Kind: kind},
			RequestId: requestID(),
		}, admin)
		must(err)
		expect("party "+id, created.GetName(), tenant.GetName()+"/parties/"+id)
		return created
	}
	provider := party("platform", accordv1.PartyKind_PARTY_KIND_PROVIDER)
	customer := party("bank", accordv1.PartyKind_PARTY_KIND_CUSTOMER)

	service, err := accordv1.NewServiceCatalogServiceClient(conn).CreateService(ctx, &accordv1.CreateServiceRequest{
		Parent:    tenant.GetName(),
		ServiceId: "payments",
		Service:   &accordv1.Service{DisplayName: "Payments", Owner: provider.GetName()},
		RequestId: requestID(),
	}, admin)
	must(err)
	expect("service.owner", service.GetOwner(), provider.GetName())

	agreements := accordv1.NewAgreementServiceClient(conn)
	agreement, err := agreements.CreateAgreement(ctx, &accordv1.CreateAgreementRequest{
		Parent:      tenant.GetName(),
		AgreementId: "payments-sla",
		Agreement: &accordv1.Agreement{
			DisplayName:   "Payments SLA",
			Kind:          accordv1.AgreementKind_AGREEMENT_KIND_SERVICE_LEVEL,
			Provider:      provider.GetName(),
			Services:      []string{service.GetName()},
			EffectiveFrom: timestamppb.New(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)),
			Objectives: []*accordv1.Objective{{
				Key:         "availability",
				DisplayName: "Availability",
				Indicator:   "http_success",
				Kind:        accordv1.ObjectiveKind_OBJECTIVE_KIND_RATIO,
				Target:      0.999,
				Window: &accordv1.Window{Window: &accordv1.Window_Rolling{
					Rolling: &accordv1.RollingWindow{Duration: durationpb.New(30 * 24 * time.Hour)},
				}},
			}},
		},
		RequestId: requestID(),
	}, admin)
	must(err)
	expect("agreement.state", agreement.GetState().String(), "AGREEMENT_STATE_DRAFT")
	agreement, err = agreements.PublishAgreement(ctx, &accordv1.PublishAgreementRequest{
		Name: agreement.GetName(), Etag: agreement.GetEtag(),
	}, admin)
	must(err)
	expect("published agreement.state", agreement.GetState().String(), "AGREEMENT_STATE_ACTIVE")

	fmt.Println("3. resolve")
	entitlement, err := accordv1.NewEntitlementServiceClient(conn).ResolveEntitlement(ctx, &accordv1.ResolveEntitlementRequest{
		Parent:   tenant.GetName(),
		Consumer: customer.GetName(),
		Service:  service.GetName(),
	}, admin)
	must(err)
	var keys []string
	for _, o := range entitlement.GetObjectives() {
		keys = append(keys, o.GetObjective().GetKey())
	}
	expect("objectives", keys, []string{"availability"})
	objective := entitlement.GetObjectives()[0]
	expect("objective target", objective.GetObjective().GetTarget(), 0.999)
	expect("provenance agreement", objective.GetProvenance().GetAgreement(), agreement.GetName())
	expect("provenance revision", objective.GetProvenance().GetRevisionId(), agreement.GetRevisionId())
	if entitlement.GetVersion() == "" {
		fail("entitlement.version is empty")
	}

	fmt.Println("4. report")
	now := timestamppb.New(time.Now().Truncate(time.Second))
	report, err := accordv1.NewMeasurementServiceClient(conn).ReportMeasurements(ctx, &accordv1.ReportMeasurementsRequest{
		Parent: tenant.GetName(),
		Measurements: []*accordv1.Measurement{{
			Id: "go-requests-1", Service: service.GetName(), Indicator: "http_success", Time: now,
			Value: &accordv1.Measurement_Counts{Counts: &accordv1.Counts{Good: 999, Total: 1000}},
		}, {
			Id: "go-latency-1", Service: service.GetName(), Indicator: "latency_p99", Time: now,
			Value: &accordv1.Measurement_Sample{Sample: &accordv1.Sample{Value: 0.2}},
		}},
	}, admin)
	must(err)
	expect("accepted", report.GetAccepted(), int64(1))
	expect("duplicates", report.GetDuplicates(), int64(0))
	var rejections []string
	for _, r := range report.GetRejections() {
		rejections = append(rejections, fmt.Sprintf("%d %s %s", r.GetIndex(), r.GetId(), r.GetReason()))
	}
	expect("rejections", rejections, []string{"1 go-latency-1 UNKNOWN_INDICATOR"})

	fmt.Println("5. error details")
	_, err = parties.CreateParty(ctx, &accordv1.CreatePartyRequest{
		Parent:  tenant.GetName(),
		PartyId: "Not-Valid",
		Party:   &accordv1.Party{DisplayName: "Bad id", Kind: accordv1.PartyKind_PARTY_KIND_CUSTOMER},
	}, admin)
	if err == nil {
		fail("CreateParty with party_id 'Not-Valid' succeeded")
	}
	// status.Convert reads grpc-status-details-bin: the google.rpc.Status,
	// whose details Details() unpacks into their genproto types.
	st := status.Convert(err)
	expect("code", st.Code().String(), "InvalidArgument")
	var badRequest *errdetails.BadRequest
	var info *errdetails.ErrorInfo
	for _, detail := range st.Details() {
		switch d := detail.(type) {
		case *errdetails.BadRequest:
			badRequest = d
		case *errdetails.ErrorInfo:
			info = d
		case error:
			fail("a detail does not decode: %v", d)
		}
	}
	if badRequest == nil {
		fail("no BadRequest in the details %v", st.Details())
	}
	var fields []string
	for _, v := range badRequest.GetFieldViolations() {
		fields = append(fields, v.GetField())
	}
	expect("violations", fields, []string{"party_id"})
	fmt.Printf("      (%s)\n", badRequest.GetFieldViolations()[0].GetDescription())
	if info == nil {
		fail("no ErrorInfo in the details %v", st.Details())
	}
	expect("ErrorInfo", []string{info.GetReason(), info.GetDomain()}, []string{"INVALID_ARGUMENT", "accord"})
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintf(os.Stderr, "usage: %s ADDRESS\n", os.Args[0])
		os.Exit(2)
	}
	bootstrapKey := os.Getenv("ACCORD_BOOTSTRAP_KEY")
	if bootstrapKey == "" {
		fmt.Fprintln(os.Stderr, "e2e: set ACCORD_BOOTSTRAP_KEY to the server's bootstrap key")
		os.Exit(2)
	}
	defer func() {
		if r := recover(); r != nil {
			var m mismatch
			if err, ok := r.(error); ok && errors.As(err, &m) {
				fmt.Fprintf(os.Stderr, "e2e: FAIL: %s\n", m.msg)
			} else if err, ok := r.(error); ok {
				fmt.Fprintf(os.Stderr, "e2e: FAIL: RPC failed: %s: %s\n",
					status.Code(err), status.Convert(err).Message())
			} else {
				fmt.Fprintf(os.Stderr, "e2e: FAIL: %v\n", r)
			}
			os.Exit(1)
		}
	}()
	run(os.Args[1], bootstrapKey)
	fmt.Println("e2e: go OK")
}
