using System.CommandLine;
using Sandbox.Hypervisors.Qemu;
using Sandbox.Runtime.Configuration;
using Sandbox.Runtime.Templates;

namespace Sandbox.Ctl;

/// <summary>
/// `sandboxctl template build` makes the template the configuration's sandboxes are cloned from ([hypervisor.qemu]
/// template = true), so that the first pod does not pay for it; `sandboxctl template list` shows the templates on
/// this host with their manifests.
/// </summary>
public static class TemplateCommand
{
    public static Command Create()
    {
        var config = new Option<string?>("--config") { Description = "configuration.toml to build for (default: $SANDBOX_CONFIG, else /etc/sandbox/configuration.toml, else built-in defaults)" };
        var root = StateRootOption.Create();
        var build = new Command("build", "Build the VM template of the configuration (a booted, idle guest, saved) unless it exists") { config, root };
        build.SetAction(async (parse, cancellationToken) =>
        {
            var configuration = new SandboxConfigurationLoader().Load(parse.GetValue(config));
            var options = configuration.ToVmOptions("template", hostname: null);
            if (parse.GetValue(root) is { } stateRoot)
                options = options with { StateRoot = stateRoot };
            if (VmTemplateCloner.WhyNot(options) is { } reason)
            {
                Console.Error.WriteLine($"sandboxctl: no template for this configuration: {reason}");
                return 1;
            }
            var store = new VmTemplateStore(VmTemplateCloner.RootBeside(options.StateRoot!));
            var clock = System.Diagnostics.Stopwatch.StartNew();
            var recipe = VmTemplateCloner.RecipeFor(options);
            var (template, built) = await store.GetOrBuildAsync(recipe, () => new QemuAdapter(), options.JailerPath, options.AgentReadyTimeout, cancellationToken);
            Console.WriteLine(built
                ? $"built template {template.Key[..16]} in {clock.Elapsed.TotalSeconds:0.00} s: {template.Directory}"
                : $"template {template.Key[..16]} exists: {template.Directory}");
            return 0;
        });
        var list = new Command("list", "List the VM templates on this host with their manifests") { root };
        list.SetAction(parse =>
        {
            string templates = VmTemplateCloner.RootBeside(Sandbox.Runtime.Sandboxes.SandboxStateDirectory.ResolveRoot(parse.GetValue(root)));
            var directories = Directory.Exists(templates) ? Directory.GetDirectories(templates).Order(StringComparer.Ordinal).ToList() : [];
            var complete = directories.Select(d => Path.Combine(d, "manifest.txt")).Where(File.Exists).ToList();
            if (complete.Count == 0)
            {
                Console.WriteLine($"no templates in {templates}");
                return 0;
            }
            foreach (string manifest in complete)
            {
                string directory = Path.GetDirectoryName(manifest)!;
                var holders = Path.Combine(directory, "holders");
                int held = Directory.Exists(holders) ? Directory.GetFiles(holders).Length : 0;
                Console.WriteLine($"{directory} (memory held by {held} shim(s))");
                foreach (string line in File.ReadLines(manifest).Where(l => !l.StartsWith('#')))
                    Console.WriteLine("  " + line);
            }
            return 0;
        });
        return new Command("template", "VM templates: sandboxes cloned from a saved guest instead of booted ([hypervisor.qemu] template)") { build, list };
    }
}
