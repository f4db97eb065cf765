using Sandbox.Hypervisors;
using Sandbox.Hypervisors.Qemu;
using Sandbox.Runtime.Sandboxes;

namespace Sandbox.IntegrationTests.Support;

/// <summary>Boots real QEMU VMs from the project's guest image (build/guest), with state under a private temp root.</summary>
public static class TestVm
{
    public static string NewStateRoot()
    {
        // Short: Unix socket paths inside it must stay under 108 bytes.
        var root = Path.Combine("/tmp", "sbx-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(root);
        return root;
    }

    public static Task<SandboxVm> BootAsync(string stateRoot, string sandboxId, CancellationToken cancellationToken, bool debugConsole = false) =>
        SandboxVm.BootAsync(new SandboxVmOptions
        {
            DebugConsole = debugConsole,
            SandboxId = sandboxId,
            Assets = GuestAssets.Locate(),
            StateRoot = stateRoot,
            Hostname = "sandbox-" + sandboxId,
            AgentReadyTimeout = TimeSpan.FromSeconds(90),
        }, new QemuAdapter(), cancellationToken);
}

/// <summary>One VM shared by every test of the collection that does not need a fresh one.</summary>
public sealed class SharedVmFixture : IAsyncLifetime
{
    private readonly string _stateRoot = TestVm.NewStateRoot();
    private SandboxVm? _vm;

    public SandboxVm Vm => _vm ?? throw new InvalidOperationException("the shared VM did not boot");

    /// <summary>The private parent of the shared VM's state directory.</summary>
    public string StateRoot => _stateRoot;

    public async Task InitializeAsync()
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(3));
        _vm = await TestVm.BootAsync(_stateRoot, "shared", timeout.Token);
    }

    public async Task DisposeAsync()
    {
        if (_vm is not null)
            await _vm.DisposeAsync();
        try { Directory.Delete(_stateRoot, recursive: true); } catch (IOException) { }
    }
}

[CollectionDefinition(Name)]
public sealed class SharedVmCollection : ICollectionFixture<SharedVmFixture>
{
    public const string Name = "shared VM";
}
