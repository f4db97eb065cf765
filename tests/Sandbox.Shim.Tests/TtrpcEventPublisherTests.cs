using Containerd.Events;
using Containerd.Services.Events.Ttrpc.V1;
using Google.Protobuf.WellKnownTypes;
using Sandbox.Shim.Events;
using Sandbox.Ttrpc;

namespace Sandbox.Shim.Tests;

/// <summary>The shim's event publisher against a ttrpc server that stands in for containerd's events service.</summary>
public sealed class TtrpcEventPublisherTests : IAsyncLifetime
{
    private readonly string _directory = Directory.CreateTempSubdirectory("pub-").FullName;
    private readonly List<ForwardRequest> _received = new();
    private TtrpcServer? _containerd;

    private string SocketPath => Path.Combine(_directory, "c.sock.ttrpc");

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        if (_containerd is not null)
            await _containerd.DisposeAsync();
        Directory.Delete(_directory, recursive: true);
    }

    private void StartContainerd()
    {
        var registry = new TtrpcServiceRegistry();
        registry.Register<ForwardRequest, Empty>(TtrpcEventPublisher.ServiceName, "Forward", ForwardRequest.Parser, (request, _) =>
        {
            lock (_received) _received.Add(request);
            return Task.FromResult(new Empty());
        });
        _containerd = new TtrpcServer(registry);
        _containerd.Start(SocketPath);
    }

    /// <summary>Issue 15: an exit published while containerd restarts (its socket gone for seconds) reaches the new
    /// containerd once it serves; with the former budget of 5 attempts in 1.5 s it was dropped.</summary>
    [Fact]
    public async Task An_event_published_while_containerd_is_down_reaches_it_once_it_serves_again()
    {
        var log = new List<string>();
        await using var publisher = new TtrpcEventPublisher(SocketPath, "default", line => { lock (log) log.Add(line); });

        publisher.Publish(ContainerdEvent.Of(new TaskExit { ContainerId = "c1", Id = "c1", ExitStatus = 137 }));
        await Task.Delay(TimeSpan.FromSeconds(4)); // longer than the former budget
        StartContainerd();
        await publisher.FlushAsync(TimeSpan.FromSeconds(20));

        ForwardRequest forwarded;
        lock (_received) forwarded = Assert.Single(_received);
        Assert.Equal("/tasks/exit", forwarded.Envelope.Topic);
        Assert.Equal("containerd.events.TaskExit", forwarded.Envelope.Event.TypeUrl); // containerd's own form: no type.googleapis.com/ prefix
        Assert.Equal(137u, TaskExit.Parser.ParseFrom(forwarded.Envelope.Event.Value).ExitStatus);
        lock (log) Assert.Contains(log, line => line.Contains("retrying for up to 60 s", StringComparison.Ordinal));
    }
}
