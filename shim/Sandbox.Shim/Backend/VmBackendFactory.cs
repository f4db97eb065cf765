using Sandbox.Hypervisors.HostDetection;
using Sandbox.Hypervisors.Qemu;
using Sandbox.Runtime.Configuration;
using Sandbox.Runtime.PostMortem;
using Sandbox.Shim.Start;
using Sandbox.Shim.Vm;

namespace Sandbox.Shim.Backend;

/// <summary>
/// The VM backend, the product: every sandbox group in its own QEMU VM (<see cref="VmSandboxBackend"/>), configured by
/// configuration.toml (<see cref="SandboxConfigurationLoader"/>: the runtime options' ConfigPath, $SANDBOX_CONFIG,
/// /etc/sandbox/configuration.toml, built-in defaults).
/// </summary>
public sealed class VmBackendFactory : ISandboxBackendFactory
{
    public string Name => "vm";

    /// <summary>QEMU is a System.Diagnostics.Process child: .NET reaps it, and a waitpid(-1) reaper would steal its exit.</summary>
    public bool NeedsChildSubreaper => false;

    /// <summary>
    /// `start`: the configuration must load and name a guest image and a QEMU that exist, so that `ctr run` reports a
    /// broken setup at once. The host's abilities (KVM, vsock) are probed when the VM boots; `sandboxctl check` shows them.
    /// </summary>
    public void EnsureUsable(ShimContext context)
    {
        var configuration = LoadConfiguration(context);
        try
        {
            EnsureGuestImageAndQemu(configuration);
        }
        catch (InvalidOperationException e)
        {
            RecordRefusal(context, configuration, e.Message);
            throw;
        }
    }

    private static void EnsureGuestImageAndQemu(SandboxConfiguration configuration)
    {
        try
        {
            var assets = configuration.ResolveGuestAssets();
            foreach (var (key, path) in new[] { ("hypervisor.qemu.kernel", assets.KernelPath), ("hypervisor.qemu.initrd", assets.InitrdPath) })
            {
                if (!File.Exists(path))
                    throw new InvalidOperationException($"the guest image file {path} does not exist (key {key} in {configuration.Source}); build it with `make image` or install it with `make install`");
            }
        }
        catch (FileNotFoundException e)
        {
            throw new InvalidOperationException(e.Message, e);
        }
        if (QemuProbe.Locate(configuration.Qemu.Path, out string reason) is null)
        {
            throw new InvalidOperationException(
                $"QEMU cannot be started: {reason} (key hypervisor.qemu.path in {configuration.Source}); " +
                "`sandboxctl check` shows what this host can run");
        }
    }

    /// <summary>A sandbox refused at `start` never gets a state directory: its post-mortem record is what `sandboxctl
    /// doctor` finds. The sandbox is the container's group (the bundle's directory is named after the container).</summary>
    private static void RecordRefusal(ShimContext context, SandboxConfiguration configuration, string message)
    {
        string containerId = Path.GetFileName(context.Bundle.TrimEnd('/'));
        string sandboxId = containerId;
        try
        {
            sandboxId = BundleConfig.GroupIdOf(File.ReadAllText(Path.Combine(context.Bundle, "config.json")), containerId);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException or System.Text.Json.JsonException)
        {
            // the container's own id: what `ctr run` names its sandbox
        }
        if (sandboxId.Length == 0)
            return;
        var record = PostMortemRecord.BootRefused(sandboxId, message, containers: [containerId]);
        if (new PostMortemStore(configuration.ResolveStateRoot(), configuration.Runtime.PostMortemRecords).Write(record) is { } problem)
            context.Log(problem);
    }

    public TimeSpan IdleExit(ShimContext context) => LoadConfiguration(context).Runtime.IdleExit;

    public ISandboxBackend Create(ShimContext context)
    {
        var configuration = LoadConfiguration(context);
        context.Log($"VM backend: configuration from {configuration.Source}");
        var adapterOptions = new QemuAdapterOptions
        {
            TcgTranslationCacheMiB = configuration.Qemu.TcgTranslationCacheMiB,
            CloneTcgTranslationCacheMiB = configuration.Qemu.CloneTcgTranslationCacheMiB,
        };
        return new VmSandboxBackend(configuration, () => new QemuAdapter(adapterOptions), context.Namespace, context.Log);
    }

    public Task CleanupAfterDeadShimAsync(ShimContext context, string containerId, CancellationToken cancellationToken)
    {
        SandboxConfiguration configuration;
        try
        {
            configuration = LoadConfiguration(context);
        }
        catch (InvalidOperationException e)
        {
            context.Log($"container {containerId}: {e.Message}; cleaning up with the default state root");
            configuration = SandboxConfiguration.Default;
        }
        return VmSandboxCleanup.CleanupAfterDeadShimAsync(configuration, context.Bundle, containerId, context.Log, cancellationToken);
    }

    private static SandboxConfiguration LoadConfiguration(ShimContext context)
    {
        try
        {
            return new SandboxConfigurationLoader().Load(context.ConfigPath);
        }
        catch (SandboxConfigurationException e)
        {
            throw new InvalidOperationException(e.Message, e);
        }
    }
}
