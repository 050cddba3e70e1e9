// Package kube is the kubernetesPod probe: the pod's own container
// readiness, as the kubelet reported it to the API server (http-healthcheck-sidecar's
// http-healthcheck-sidecar, without its one GET per request).
//
// It watches its one pod (an informer with a metadata.name field
// selector), so probe runs, and therefore any number of HTTP requests to
// healthbridge, cost no API requests: each run reads the watch's cache.
// When the API server cannot be reached the last known status is used
// until maxStalenessSeconds, then the check fails and says why; the
// informer re-lists and re-watches by itself when the server returns.
//
// RBAC: get, list and watch on pods in the namespace (or restricted by
// resourceNames to the one pod).
package kube

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/healthbridge/healthbridge/internal/config"
	"github.com/healthbridge/healthbridge/internal/probe"
)

// ServiceAccountNamespaceFile is where a pod finds its namespace.
const ServiceAccountNamespaceFile = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"

// Kind is the kubernetesPod kind: this pod's container readiness, as the
// kubelet reported it.
var Kind = probe.Kind{
	Name: "kubernetesPod",
	Has:  func(c *config.Check) bool { return c.KubernetesPod != nil },
	Defaults: func(c *config.Check) {
		if c.KubernetesPod.MaxStalenessSeconds == 0 {
			c.KubernetesPod.MaxStalenessSeconds = config.DefaultMaxStalenessSeconds
		}
	},
	Validate: func(c *config.Check, path string) []error {
		if k := c.KubernetesPod; k.MaxStalenessSeconds < 0 {
			return []error{config.Errorf(path+".kubernetesPod.maxStalenessSeconds", "must be >= 0, got %d", k.MaxStalenessSeconds)}
		}
		return nil
	},
	New: New,
}

// Prober reads one pod's readiness from a watch cache.
type Prober struct {
	ns, pod, container, self string
	maxStale                 time.Duration
	client                   rest.Interface

	// now is the clock staleness is judged by; time.Now unless a test
	// sets it.
	now func() time.Time

	startOnce sync.Once
	stopOnce  sync.Once
	ctx       context.Context // cancelled by Close: ends the informer and any LIST or WATCH in flight
	cancel    context.CancelFunc
	done      chan struct{}
	informer  cache.SharedIndexInformer

	// mu guards lostSince and lastErr.
	mu        sync.Mutex
	lostSince time.Time // when requests began to fail; zero while they succeed
	lastErr   error
}

// New builds a kubernetesPod prober from c.KubernetesPod, resolving the
// pod, namespace and credentials now (a missing namespace or kubeconfig is
// a start-up error). The watch starts at the first probe run.
func New(c *config.Check, d probe.Deps) (probe.Prober, error) {
	k := c.KubernetesPod
	if k == nil {
		return nil, config.Errorf("kubernetesPod", "required")
	}
	rc, kubeNS, err := RESTConfig(d.Kubeconfig)
	if err != nil {
		return nil, config.Errorf("kubernetesPod", "no Kubernetes credentials: %v", err)
	}
	pod := k.Pod
	if pod == "" {
		pod = os.Getenv("HOSTNAME")
	}
	if pod == "" {
		return nil, config.Errorf("kubernetesPod.pod", "not set and $HOSTNAME is empty")
	}
	ns := k.Namespace
	if ns == "" {
		ns = defaultNamespace(kubeNS)
	}
	if ns == "" {
		return nil, config.Errorf("kubernetesPod.namespace", "not set, and no %s, $POD_NAMESPACE or kubeconfig namespace", ServiceAccountNamespaceFile)
	}
	self := k.SelfContainer
	if self == "" {
		self = os.Getenv("HEALTHBRIDGE_CONTAINER_NAME")
	}
	if d.UserAgent != "" {
		rc.UserAgent = d.UserAgent
	}
	client, err := newPodClient(rc)
	if err != nil {
		return nil, config.Errorf("kubernetesPod", "client: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Prober{ns: ns, pod: pod, container: k.Container, self: self,
		maxStale: time.Duration(k.MaxStalenessSeconds) * time.Second, client: client, now: time.Now,
		ctx: ctx, cancel: cancel, done: make(chan struct{})}, nil
}

// podScheme knows the reduced Pod and PodList (pod.go) as core/v1 types,
// and metav1's list options. The generated clientset would register every
// API group and add about 25 MB to the binary; pods are all we read.
var (
	podScheme = runtime.NewScheme()
	podCodecs = serializer.NewCodecFactory(podScheme)
	podParams = runtime.NewParameterCodec(podScheme)
)

// coreV1 is the core API group's version v1.
var coreV1 = schema.GroupVersion{Version: "v1"}

func init() {
	podScheme.AddKnownTypes(coreV1, &Pod{}, &PodList{})
	metav1.AddToGroupVersion(podScheme, coreV1)
}

// newPodClient is a REST client for the core/v1 API.
func newPodClient(rc *rest.Config) (*rest.RESTClient, error) {
	c := rest.CopyConfig(rc)
	c.APIPath = "/api"
	c.GroupVersion = &coreV1
	c.NegotiatedSerializer = podCodecs.WithoutConversion()
	if c.UserAgent == "" {
		c.UserAgent = rest.DefaultKubernetesUserAgent()
	}
	return rest.RESTClientFor(c)
}

// RESTConfig resolves credentials with client-go's usual rules: the
// explicit kubeconfig path if given, else $KUBECONFIG, else ~/.kube/config,
// else the in-cluster service account. It also returns the kubeconfig
// context's namespace ("" when none is set).
func RESTConfig(kubeconfig string) (*rest.Config, string, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	if kubeconfig != "" {
		rules.ExplicitPath = kubeconfig
	}
	cc := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{})
	rc, err := cc.ClientConfig()
	if err != nil {
		return nil, "", err
	}
	// Only a namespace the kubeconfig's context sets: cc.Namespace() would
	// answer "default" for none, and read the service-account file itself.
	ns := ""
	if raw, err := cc.RawConfig(); err == nil {
		if ctx := raw.Contexts[raw.CurrentContext]; ctx != nil {
			ns = ctx.Namespace
		}
	}
	return rc, ns, nil
}

func defaultNamespace(kubeNS string) string {
	if b, err := os.ReadFile(ServiceAccountNamespaceFile); err == nil && strings.TrimSpace(string(b)) != "" {
		return strings.TrimSpace(string(b))
	}
	if ns := os.Getenv("POD_NAMESPACE"); ns != "" {
		return ns
	}
	return kubeNS
}

func (p *Prober) start() {
	selector := fields.OneTermEqualSelector("metadata.name", p.pod).String()
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, opts metav1.ListOptions) (runtime.Object, error) {
			opts.FieldSelector = selector
			l := &PodList{}
			err := p.client.Get().Namespace(p.ns).Resource("pods").
				VersionedParams(&opts, podParams).Do(ctx).Into(l)
			p.noteContact(err)
			return l, err
		},
		WatchFuncWithContext: func(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
			opts.FieldSelector = selector
			opts.Watch = true
			w, err := p.client.Get().Namespace(p.ns).Resource("pods").
				VersionedParams(&opts, podParams).Watch(ctx)
			p.noteContact(err)
			return w, err
		},
	}
	p.informer = cache.NewSharedIndexInformer(lw, &Pod{}, 0, cache.Indexers{})
	_ = p.informer.SetWatchErrorHandlerWithContext(func(_ context.Context, _ *cache.Reflector, err error) { p.noteContact(err) })
	go func() {
		defer close(p.done)
		p.informer.RunWithContext(p.ctx)
	}()
}

// noteContact records the outcome of a request to the API server.
func (p *Prober) noteContact(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err == nil {
		p.lostSince, p.lastErr = time.Time{}, nil
		return
	}
	if errors.Is(err, context.Canceled) {
		return
	}
	if p.lostSince.IsZero() {
		p.lostSince = p.now()
	}
	p.lastErr = err
}

// Probe judges the cached pod. The first run waits (within ctx) for the
// watch's first sync.
func (p *Prober) Probe(ctx context.Context) probe.Result {
	p.startOnce.Do(p.start)
	if !p.informer.HasSynced() {
		cache.WaitForCacheSync(ctx.Done(), p.informer.HasSynced)
	}
	p.mu.Lock()
	lostSince, lastErr := p.lostSince, p.lastErr
	p.mu.Unlock()
	where := p.ns + "/" + p.pod
	if !p.informer.HasSynced() {
		if lastErr != nil {
			return probe.Unknown(fmt.Errorf("cannot read pod %s: %v", where, lastErr))
		}
		return probe.Unknown(fmt.Errorf("pod %s: no answer from the API server yet", where))
	}
	stale, err := staleness(lostSince, lastErr, p.now(), p.maxStale, where)
	if err != nil {
		return probe.Unknown(err)
	}
	var pod *Pod
	if obj, ok, _ := p.informer.GetStore().GetByKey(where); ok {
		pod = obj.(*Pod)
	}
	ok, reason := Ready(pod, p.container, p.self)
	if pod == nil {
		reason = fmt.Sprintf("pod %s not found", where)
	}
	if ok {
		return probe.Success(reason + stale)
	}
	return probe.Failure("%s%s", reason, stale)
}

// staleness judges the last known status when the API server has not
// answered since lostSince (zero: it answers): within maxStale it returns a
// suffix saying the status is the last known one; after maxStale, an error
// (the check cannot be evaluated: Unknown, which counts as a failure). It
// is pure; now is the caller's clock.
func staleness(lostSince time.Time, lastErr error, now time.Time, maxStale time.Duration, where string) (string, error) {
	if lostSince.IsZero() {
		return "", nil
	}
	age := now.Sub(lostSince)
	if age > maxStale {
		return "", fmt.Errorf("API server unreachable for %v (more than maxStalenessSeconds %v): last known status of pod %s is too old: %v",
			age.Round(time.Second), maxStale, where, lastErr)
	}
	return fmt.Sprintf(" (last known status: API server unreachable for %v: %v)", age.Round(time.Second), lastErr), nil
}

// Close stops the watch, cancelling any LIST or WATCH in flight, and waits
// for it. It is safe to call more than once, concurrently, and before any
// Probe.
func (p *Prober) Close() error {
	p.startOnce.Do(func() { close(p.done) }) // never started: nothing to stop
	p.stopOnce.Do(p.cancel)
	<-p.done
	return nil
}
