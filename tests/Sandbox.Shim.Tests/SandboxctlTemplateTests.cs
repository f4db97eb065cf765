using Sandbox.Shim.Tests.Containerd;

namespace Sandbox.Shim.Tests;

/// <summary>`sandboxctl template build` makes the template of a configuration once (a real VM booted and saved), and
/// `template list` shows it with its manifest.</summary>
public sealed class SandboxctlTemplateTests : IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("sbx-tpl-").FullName;

    public void Dispose()
    {
        try { Directory.Delete(_root, recursive: true); } catch (IOException) { }
    }

    [Fact]
    public async Task Template_build_makes_the_configurations_template_once_and_list_shows_it()
    {
        string sandboxctl = SandboxctlBinary.Locate();
        string jailer = Path.Combine(Path.GetDirectoryName(ShimBinary.Locate())!, "sandbox-jailer");
        string configuration = Path.Combine(_root, "configuration.toml");
        await File.WriteAllTextAsync(configuration, $"[hypervisor.qemu]\njailer_path = \"{jailer}\"\n");
        string stateRoot = Path.Combine(_root, "sandboxes");
        string[] build = ["template", "build", "--config", configuration, "--state-root", stateRoot];

        var first = await ExternalCommand.RunAsync(sandboxctl, build, TimeSpan.FromMinutes(3));
        Assert.True(first.ExitCode == 0, first.ToString());
        Assert.StartsWith("built template ", first.Stdout);
        var second = await ExternalCommand.RunAsync(sandboxctl, build, TimeSpan.FromMinutes(3));
        Assert.True(second.ExitCode == 0 && second.Stdout.Contains(" exists: ", StringComparison.Ordinal), second.ToString());

        var list = await ExternalCommand.RunAsync(sandboxctl, ["template", "list", "--state-root", stateRoot], TimeSpan.FromMinutes(1));
        Assert.True(list.ExitCode == 0, list.ToString());
        string template = Assert.Single(Directory.GetDirectories(Path.Combine(_root, "templates")));
        Assert.Contains($"{template} (memory held by 0 shim(s))", list.Stdout);
        Assert.Contains("  network_cards 0", list.Stdout);
        Assert.Contains("  acceleration ", list.Stdout);
    }
}
