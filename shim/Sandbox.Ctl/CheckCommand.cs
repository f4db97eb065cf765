using System.CommandLine;
using System.Text.Json;
using System.Text.Json.Serialization;
using Sandbox.Runtime.Host;

namespace Sandbox.Ctl;

/// <summary>`sandboxctl check`: can this host run sandboxes, and why not. Exit 0 when it can, 1 when it cannot.</summary>
public static class CheckCommand
{
    public static Command Create()
    {
        var json = new Option<bool>("--json") { Description = "Print the report as JSON for tools" };
        var qemu = new Option<string?>("--qemu") { Description = "QEMU binary to check instead of qemu-system-x86_64 on PATH" };
        var guest = new Option<string?>("--guest-dir") { Description = "Directory with vmlinux, initramfs.cpio and manifest.txt" };
        var jailer = new Option<string?>("--jailer") { Description = "sandbox-jailer to check instead of the one on PATH" };
        var command = new Command("check", "Tell whether this host can run sandboxes, and why not") { json, qemu, guest, jailer };
        command.SetAction(async (parse, cancellationToken) =>
        {
            var report = await new HostCheck(parse.GetValue(qemu), parse.GetValue(guest), parse.GetValue(jailer)).RunAsync(cancellationToken);
            if (parse.GetValue(json))
                Console.WriteLine(JsonSerializer.Serialize(report, CheckJson.Default.HostCheckReport));
            else
                PrintText(report);
            return report.CanRunSandboxes ? 0 : 1;
        });
        return command;
    }

    private static void PrintText(HostCheckReport report)
    {
        foreach (var item in report.Items)
        {
            var mark = item.Ok ? "ok  " : item.Required ? "FAIL" : "warn";
            Console.WriteLine($"{mark}  {item.Name,-12} {item.Detail}");
        }
        Console.WriteLine();
        Console.WriteLine(report.CanRunSandboxes
            ? $"This host can run sandboxes (acceleration: {report.Acceleration}, vsock: {report.VsockMode})."
            : "This host cannot run sandboxes: fix the FAIL lines above.");
    }
}

[JsonSourceGenerationOptions(WriteIndented = true, PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower)]
[JsonSerializable(typeof(HostCheckReport))]
internal sealed partial class CheckJson : JsonSerializerContext;
