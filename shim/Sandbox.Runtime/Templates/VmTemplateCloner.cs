using Sandbox.Hypervisors;
using Sandbox.Hypervisors.HostDetection;
using Sandbox.Runtime.Sandboxes;

namespace Sandbox.Runtime.Templates;

/// <summary>
/// Decides whether a sandbox's VM starts as a clone and, if so, gets its template (building it on first use) and the
/// template's memory. Never fails a sandbox: whatever stands in the way is logged with its reason and the VM boots cold.
/// </summary>
public sealed class VmTemplateCloner(VmTemplateStore store, Func<IHypervisor> newHypervisor, Action<string> log)
{
    /// <summary>The template root beside a sandbox state root (/run/sandbox/sandboxes -> /run/sandbox/templates).</summary>
    public static string RootBeside(string stateRoot) =>
        Path.Combine(Path.GetDirectoryName(Path.GetFullPath(stateRoot).TrimEnd('/')) ?? "/", "templates");

    /// <summary>What to start <paramref name="options"/>' VM, with <paramref name="networkCards"/> network cards, from; or
    /// null to boot it cold (the reason is logged).</summary>
    public async Task<TemplateClone?> TryPrepareAsync(SandboxVmOptions options, int networkCards, CancellationToken cancellationToken)
    {
        string id = options.SandboxId;
        if (WhyNot(options) is { } reason)
        {
            log($"sandbox {id}: boots cold, not from a template: {reason}");
            return null;
        }
        try
        {
            var recipe = RecipeFor(options) with { NetworkCards = networkCards };
            var clock = System.Diagnostics.Stopwatch.StartNew();
            var (template, built) = await store.GetOrBuildAsync(recipe, newHypervisor, options.JailerPath, options.AgentReadyTimeout, cancellationToken);
            if (built)
                log($"sandbox {id}: built template {template.Key[..16]} in {clock.Elapsed.TotalSeconds:0.00} s ({template.Directory})");
            var (memory, shared) = TemplateMemoryHolders.Acquire(template);
            return new TemplateClone(template, memory, shared);
        }
        catch (Exception e) when (e is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            log($"sandbox {id}: boots cold, the template is not available: {e.Message}");
            return null;
        }
    }

    /// <summary>The template recipe of a sandbox's VM. Throws <see cref="FileNotFoundException"/> without QEMU.</summary>
    public static VmTemplateRecipe RecipeFor(SandboxVmOptions options) => new()
    {
        Assets = options.Assets,
        QemuPath = QemuProbe.Locate(options.VmmPath, out string qemuReason) ?? throw new FileNotFoundException(qemuReason),
        Vcpus = options.Vcpus,
        MemoryMiB = options.MemoryMiB,
        Acceleration = options.Acceleration,
        MachineType = options.MachineType,
        ExtraKernelParameters = options.ExtraKernelParameters,
        Debug = options.Debug,
    };

    /// <summary>Why a sandbox cannot start from a template (yet), or null when it can.</summary>
    public static string? WhyNot(SandboxVmOptions options) =>
        options.MachineType != MachineType.Microvm ? "templates are made for microvm only" : null;
}
