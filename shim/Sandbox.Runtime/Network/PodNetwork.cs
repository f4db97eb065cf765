namespace Sandbox.Runtime.Network;

/// <summary>
/// The host side of one pod's network: the namespace CNI configured (a path such as /var/run/netns/cni-…, from the
/// sandbox spec's linux.namespaces "network" entry) with its veths wired to tap devices for QEMU
/// (see <see cref="TapRedirectPlanner"/>). Set up before the VM starts (QEMU opens the taps), torn down after it stopped.
/// Both are idempotent and work from the namespace alone, so a new process (the shim's `delete` after a crash) can
/// tear down what another one set up. Calls must not overlap.
/// </summary>
public sealed class PodNetwork
{
    /// <summary>Bound for each ip/tc command (they take milliseconds).</summary>
    public static readonly TimeSpan DefaultCommandTimeout = TimeSpan.FromSeconds(10);

    private readonly NetnsCommandRunner _runner;
    private readonly NetnsInspector _inspector;

    public PodNetwork(string sandboxId, string networkNamespacePath, TimeSpan? commandTimeout = null)
    {
        if (string.IsNullOrWhiteSpace(sandboxId))
            throw new ArgumentException("sandbox id is empty", nameof(sandboxId));
        if (string.IsNullOrWhiteSpace(networkNamespacePath) || !Path.IsPathRooted(networkNamespacePath))
            throw new ArgumentException($"sandbox {sandboxId}: the network namespace path must be absolute, not '{networkNamespacePath}'", nameof(networkNamespacePath));
        SandboxId = sandboxId;
        NetworkNamespacePath = networkNamespacePath;
        _runner = new NetnsCommandRunner(sandboxId, networkNamespacePath, commandTimeout ?? DefaultCommandTimeout);
        _inspector = new NetnsInspector(sandboxId, _runner);
    }

    public string SandboxId { get; }
    public string NetworkNamespacePath { get; }

    /// <summary>The guest cards of the last successful <see cref="SetUpAsync"/>; empty before.</summary>
    public IReadOnlyList<GuestNic> Nics { get; private set; } = [];

    /// <summary>Inspects the namespace and wires a tap to each veth that has an address. Returns the guest cards
    /// (empty when the namespace has no such veth). Already set up: changes nothing. Partly set up (an earlier
    /// attempt was interrupted): removes that first. On failure removes what it made and throws
    /// <see cref="PodNetworkException"/>.</summary>
    public async Task<IReadOnlyList<GuestNic>> SetUpAsync(CancellationToken cancellationToken)
    {
        if (!File.Exists(NetworkNamespacePath))
            throw Fail("the network namespace does not exist (was the pod's namespace removed before the sandbox started? `ip netns list` shows the named ones)");
        var snapshot = await _inspector.InspectAsync(cancellationToken);
        var nics = TapRedirectPlanner.GuestNics(snapshot);
        if (!TapRedirectPlanner.IsSetUp(snapshot, nics))
        {
            try
            {
                await RunAllAsync(TapRedirectPlanner.TearDownCommands(snapshot), cancellationToken);
                await RunAllAsync(TapRedirectPlanner.SetUpCommands(nics), cancellationToken);
            }
            catch (Exception failure) when (failure is PodNetworkException or OperationCanceledException)
            {
                try
                {
                    await TearDownAsync(CancellationToken.None);
                }
                catch (PodNetworkException cleanup)
                {
                    throw Fail($"{Unprefixed(failure)}; removing the partial set-up failed too: {Unprefixed(cleanup)}", failure);
                }
                throw;
            }
        }
        Nics = nics;
        return nics;
    }

    /// <summary>Removes the taps and the redirects: afterwards the namespace holds no tap, ingress qdisc or filter of
    /// ours, and no port-forward rule (<see cref="LoopbackRedirectRule"/>). Nothing to do when none exist or the
    /// namespace is gone.</summary>
    public async Task TearDownAsync(CancellationToken cancellationToken)
    {
        if (!File.Exists(NetworkNamespacePath))
            return;
        var snapshot = await _inspector.InspectAsync(cancellationToken);
        await RunAllAsync(TapRedirectPlanner.TearDownCommands(snapshot), cancellationToken);
        try
        {
            await _runner.RunAsync(LoopbackRedirectRule.Check(), cancellationToken);
        }
        catch (PodNetworkException)
        {
            return; // no such rule (or no iptables, so none was ever added)
        }
        await _runner.RunAsync(LoopbackRedirectRule.Delete(), cancellationToken);
    }

    /// <summary>A fresh look at the namespace (for diagnostics and tests).</summary>
    public Task<NetnsSnapshot> InspectAsync(CancellationToken cancellationToken) => _inspector.InspectAsync(cancellationToken);

    private async Task RunAllAsync(IReadOnlyList<NetnsCommand> commands, CancellationToken cancellationToken)
    {
        foreach (var command in commands)
            await _runner.RunAsync(command, cancellationToken);
    }

    private PodNetworkException Fail(string message, Exception? inner = null) => new(SandboxId, NetworkNamespacePath, message, inner);

    private string Unprefixed(Exception e)
    {
        var prefix = $"sandbox {SandboxId}: pod network in {NetworkNamespacePath}: ";
        return e.Message.StartsWith(prefix, StringComparison.Ordinal) ? e.Message[prefix.Length..] : e.Message;
    }
}
