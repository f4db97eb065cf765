using System.Threading.Channels;
using Containerd.Services.Events.Ttrpc.V1;
using Google.Protobuf;
using Google.Protobuf.WellKnownTypes;
using Sandbox.Ttrpc;

namespace Sandbox.Shim.Events;

/// <summary>
/// Publishes events with ttrpc <c>containerd.services.events.ttrpc.v1.Events/Forward</c> on containerd's ttrpc
/// socket ($TTRPC_ADDRESS), as containerd's own shims do: one long-lived connection, one event at a time in queue
/// order, each with the namespace metadata and a 5 s timeout, retried with a fresh connection when it fails, for as long
/// as a containerd restart takes (<see cref="RetryBudget"/>): an exit published while containerd restarts must reach the
/// new one (issue 15's soak lost one to a 1.5 s budget). Every Forward carries a complete envelope (an empty Forward
/// crashes containerd 1.6.20).
/// </summary>
public sealed class TtrpcEventPublisher : IEventPublisher, IAsyncDisposable
{
    public const string ServiceName = "containerd.services.events.ttrpc.v1.Events";
    /// <summary>How long one event is retried before it is dropped: longer than containerd takes to restart.</summary>
    public static readonly TimeSpan RetryBudget = TimeSpan.FromSeconds(60);
    private static readonly TimeSpan CallTimeout = TimeSpan.FromSeconds(5);
    private static readonly TimeSpan LongestRetryDelay = TimeSpan.FromSeconds(2);

    private readonly string _address;
    private readonly string _namespace;
    private readonly Action<string> _log;
    private readonly Channel<ForwardRequest> _queue = Channel.CreateUnbounded<ForwardRequest>(new UnboundedChannelOptions { SingleReader = true });
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _sendLoop;
    private TtrpcClient? _client;
    private int _pending;

    /// <param name="ttrpcAddress">containerd's ttrpc socket ($TTRPC_ADDRESS), with or without unix://.</param>
    public TtrpcEventPublisher(string ttrpcAddress, string containerdNamespace, Action<string> log)
    {
        _address = ttrpcAddress.StartsWith("unix://", StringComparison.Ordinal) ? ttrpcAddress["unix://".Length..] : ttrpcAddress;
        _namespace = containerdNamespace;
        _log = log;
        _sendLoop = Task.Run(SendLoopAsync);
    }

    public void Publish(ContainerdEvent containerdEvent)
    {
        var envelope = new Envelope
        {
            Timestamp = Timestamp.FromDateTime(DateTime.UtcNow),
            Namespace = _namespace,
            Topic = containerdEvent.Topic,
            Event = new Any { TypeUrl = containerdEvent.TypeUrl, Value = containerdEvent.Message.ToByteString() },
        };
        Interlocked.Increment(ref _pending);
        if (!_queue.Writer.TryWrite(new ForwardRequest { Envelope = envelope }))
        {
            Interlocked.Decrement(ref _pending);
            _log($"event {containerdEvent.Topic} not published: the publisher is closed");
        }
    }

    public async Task FlushAsync(TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (Volatile.Read(ref _pending) > 0 && DateTime.UtcNow < deadline)
            await Task.Delay(10).ConfigureAwait(false);
    }

    public async ValueTask DisposeAsync()
    {
        _queue.Writer.TryComplete();
        _stop.Cancel();
        try { await _sendLoop.ConfigureAwait(false); } catch (OperationCanceledException) { }
        if (_client is not null)
            await _client.DisposeAsync().ConfigureAwait(false);
    }

    private async Task SendLoopAsync()
    {
        if (_address.Length == 0)
            _log("TTRPC_ADDRESS is not set: task events cannot be published to containerd and are dropped");
        await foreach (var request in _queue.Reader.ReadAllAsync(_stop.Token).ConfigureAwait(false))
        {
            try
            {
                if (_address.Length > 0)
                    await ForwardWithRetriesAsync(request).ConfigureAwait(false);
            }
            finally
            {
                Interlocked.Decrement(ref _pending);
            }
        }
    }

    private async Task ForwardWithRetriesAsync(ForwardRequest request)
    {
        var metadata = new[] { new KeyValuePair<string, string>("containerd-namespace-ttrpc", _namespace) };
        var giveUpAt = DateTime.UtcNow + RetryBudget;
        for (int attempt = 1; ; attempt++)
        {
            try
            {
                if (_client is null || !_client.IsConnected)
                {
                    if (_client is not null)
                        await _client.DisposeAsync().ConfigureAwait(false);
                    _client = null;
                    using var connectTimeout = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token);
                    connectTimeout.CancelAfter(CallTimeout);
                    _client = await TtrpcClient.ConnectAsync(_address, connectTimeout.Token).ConfigureAwait(false);
                }
                await _client.CallAsync(ServiceName, "Forward", request.ToByteArray(), CallTimeout, metadata, _stop.Token).ConfigureAwait(false);
                if (attempt > 1)
                    _log($"event {request.Envelope.Topic} published at attempt {attempt}");
                return;
            }
            catch (TtrpcException e) when (e.Code is not (TtrpcStatusCode.Unavailable or TtrpcStatusCode.DeadlineExceeded))
            {
                // containerd refused this event (bad namespace, unknown type...): retrying cannot help
                _log($"containerd refused event {request.Envelope.Topic}: {e.Code}: {e.Message}");
                return;
            }
            catch (Exception e) when (e is not OperationCanceledException || !_stop.IsCancellationRequested)
            {
                if (attempt == 1)
                    _log($"publishing event {request.Envelope.Topic} to {_address} failed ({e.Message}); retrying for up to {RetryBudget.TotalSeconds:0} s");
                if (_client is not null)
                {
                    await _client.DisposeAsync().ConfigureAwait(false);
                    _client = null;
                }
                if (DateTime.UtcNow >= giveUpAt)
                    break;
                var delay = TimeSpan.FromMilliseconds(Math.Min(100.0 * attempt, LongestRetryDelay.TotalMilliseconds));
                await Task.Delay(delay, _stop.Token).ConfigureAwait(false);
            }
        }
        _log($"event {request.Envelope.Topic} dropped after {RetryBudget.TotalSeconds:0} s of attempts: is containerd running and is TTRPC_ADDRESS ({_address}) its ttrpc socket?");
    }
}
