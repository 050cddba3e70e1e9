// Package watch is the client-go half of the kubernetesPod kind, run in
// its own process, healthbridge-kube (cmd/healthbridge-kube): it watches
// one pod with an informer (a metadata.name field selector, so a probe run
// costs no API request) and reports the reduced pod (kube.Pod) and whether
// the API server answers, as kube.Message values.
//
// It lives in its own process because client-go and apimachinery are most
// of what a healthbridge binary would otherwise carry: their package
// initialisers alone keep about 4.5 MB of the binary resident in every
// pod, whether or not its config has a kubernetesPod check (bench/idle).
// The watch itself is client-go's: LIST, then WATCH from the list's
// resourceVersion, re-listing after "410 Gone" and re-watching after a
// dropped connection, as the kubelet's own informers do.
package watch

import (
	"context"
	"errors"
	"reflect"
	"sync"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	k8swatch "k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/healthbridge/healthbridge/internal/probe/kube"
)

// Options says which pod to watch, with which credentials.
type Options struct {
	// Kubeconfig is an explicit kubeconfig path; "" follows client-go's
	// rules (RESTConfig).
	Kubeconfig string
	// Namespace and Pod name the one pod watched (a metadata.name field
	// selector in Namespace); both are required.
	Namespace string
	Pod       string
	// UserAgent is sent with every request; "" is client-go's default.
	UserAgent string
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

// coreV1 is the core API group's version v1.
var coreV1 = schema.GroupVersion{Version: "v1"}

// podScheme knows apiPod and apiPodList as core/v1's Pod and PodList, and
// metav1's list options. The generated clientset would register every API
// group and add about 25 MB to the binary; pods are all that is read.
var (
	podScheme = runtime.NewScheme()
	podCodecs = serializer.NewCodecFactory(podScheme)
	podParams = runtime.NewParameterCodec(podScheme)
)

func init() {
	podScheme.AddKnownTypeWithName(coreV1.WithKind("Pod"), &apiPod{})
	podScheme.AddKnownTypeWithName(coreV1.WithKind("PodList"), &apiPodList{})
	metav1.AddToGroupVersion(podScheme, coreV1)
}

func newPodClient(rc *rest.Config, userAgent string) (*rest.RESTClient, error) {
	c := rest.CopyConfig(rc)
	c.APIPath = "/api"
	c.GroupVersion = &coreV1
	c.NegotiatedSerializer = podCodecs.WithoutConversion()
	c.UserAgent = userAgent
	if c.UserAgent == "" {
		c.UserAgent = rest.DefaultKubernetesUserAgent()
	}
	return rest.RESTClientFor(c)
}

// Run watches o.Pod until ctx is done, calling emit (from one goroutine at
// a time) with the state after every change: the first sync, every
// update or deletion of the pod, and every change of the last request's
// error. It returns an error only when it cannot start (bad credentials).
func Run(ctx context.Context, o Options, emit func(kube.Message)) error {
	rc, _, err := RESTConfig(o.Kubeconfig)
	if err != nil {
		return err
	}
	client, err := newPodClient(rc, o.UserAgent)
	if err != nil {
		return err
	}
	w := &watcher{changed: make(chan struct{}, 1)}
	selector := fields.OneTermEqualSelector("metadata.name", o.Pod).String()
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, opts metav1.ListOptions) (runtime.Object, error) {
			opts.FieldSelector = selector
			l := &apiPodList{}
			err := client.Get().Namespace(o.Namespace).Resource("pods").
				VersionedParams(&opts, podParams).Do(ctx).Into(l)
			w.noteContact(err)
			return l, err
		},
		WatchFuncWithContext: func(ctx context.Context, opts metav1.ListOptions) (k8swatch.Interface, error) {
			opts.FieldSelector = selector
			opts.Watch = true
			wi, err := client.Get().Namespace(o.Namespace).Resource("pods").
				VersionedParams(&opts, podParams).Watch(ctx)
			w.noteContact(err)
			return wi, err
		},
	}
	informer := cache.NewSharedIndexInformer(lw, &apiPod{}, 0, cache.Indexers{})
	_ = informer.SetWatchErrorHandlerWithContext(func(_ context.Context, _ *cache.Reflector, err error) { w.noteContact(err) })
	onChange := func(any) { w.signal() }
	_, _ = informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { onChange(obj) },
		UpdateFunc: func(_, obj any) { onChange(obj) },
		DeleteFunc: onChange,
	})
	done := make(chan struct{})
	go func() {
		defer close(done)
		informer.RunWithContext(ctx)
	}()
	go func() {
		// No event says "listed, and the pod does not exist".
		if cache.WaitForCacheSync(ctx.Done(), informer.HasSynced) {
			w.signal()
		}
	}()
	key := o.Namespace + "/" + o.Pod
	var last *kube.Message
	for {
		select {
		case <-ctx.Done():
			<-done
			return nil
		case <-w.changed:
		}
		m := kube.Message{Synced: informer.HasSynced(), Err: w.lastErr()}
		if m.Synced {
			if obj, ok, _ := informer.GetStore().GetByKey(key); ok {
				m.Pod = obj.(*apiPod).reduced()
			}
		}
		if last != nil && reflect.DeepEqual(*last, m) { // only changes are sent
			continue
		}
		emit(m)
		last = &m
	}
}

// watcher holds the last request's outcome and wakes Run's loop.
type watcher struct {
	changed chan struct{}
	mu      sync.Mutex
	err     error
}

func (w *watcher) signal() {
	select {
	case w.changed <- struct{}{}:
	default:
	}
}

// noteContact records the outcome of a request to the API server; a
// cancelled request (shutting down) is not an outcome.
func (w *watcher) noteContact(err error) {
	if errors.Is(err, context.Canceled) {
		return
	}
	w.mu.Lock()
	w.err = err
	w.mu.Unlock()
	w.signal()
}

func (w *watcher) lastErr() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err == nil {
		return ""
	}
	return w.err.Error()
}
