using System.CommandLine;
using System.Text.Json;
using System.Text.Json.Serialization;
using Sandbox.Ctl.Doctor;
using Sandbox.Runtime.Sandboxes;

namespace Sandbox.Ctl;

/// <summary>
/// `sandboxctl doctor ID`: why a sandbox (or the sandbox of a container, or a CRI pod) failed, and what to do. The first
/// line names the cause and the fix; the next lines give the evidence, each with the file it came from. Reads the
/// sandbox's state directory while it exists, else its post-mortem record. Exit 0 when healthy (or ended without a
/// fault), 1 when a problem is found, 2 when the ID is unknown.
/// </summary>
public static class DoctorCommand
{
    public static Command Create()
    {
        var id = new Argument<string>("ID") { Description = "Sandbox id (CRI pod sandbox id, or the ctr container id), or the id of a container in it" };
        var json = new Option<bool>("--json") { Description = "Print the diagnosis as JSON for tools" };
        var root = StateRootOption.Create();
        var command = new Command("doctor", "Say why a sandbox or container failed, with the evidence, from its records") { id, json, root };
        command.SetAction(async (parse, cancellationToken) =>
        {
            string stateRoot = SandboxStateDirectory.ResolveRoot(parse.GetValue(root));
            string target = parse.GetValue(id)!;
            var evidence = await SandboxEvidenceReader.ReadAsync(stateRoot, target, cancellationToken);
            if (evidence is null)
            {
                Console.Error.WriteLine($"sandboxctl doctor: no sandbox, container or post-mortem record '{target}' under {stateRoot} " +
                                        "(`sandboxctl list --all` shows what is known; records older than runtime.post_mortem_records are dropped)");
                return 2;
            }
            var diagnosis = SandboxDiagnosis.Diagnose(evidence);
            if (parse.GetValue(json))
                Console.WriteLine(JsonSerializer.Serialize(new DoctorReport(evidence.SandboxId, evidence.Where, evidence.Ended,
                    diagnosis.Verdict == Verdict.Healthy ? "healthy" : "problem", diagnosis.Cause, diagnosis.Fix, diagnosis.Evidence), DoctorJson.Default.DoctorReport));
            else
                Print(evidence, diagnosis);
            return diagnosis.Verdict == Verdict.Healthy ? 0 : 1;
        });
        return command;
    }

    private static void Print(SandboxEvidence evidence, Diagnosis diagnosis)
    {
        string fix = diagnosis.Verdict == Verdict.Healthy ? "" : $" Fix: {diagnosis.Fix}.";
        Console.WriteLine($"sandbox {evidence.SandboxId}: {diagnosis.Cause}.{fix}");
        Console.WriteLine($"  ({(evidence.Ended ? "ended; from its post-mortem record" : "from its state directory")} {evidence.Where})");
        foreach (var line in diagnosis.Evidence)
            Console.WriteLine($"  {line.Source}: {line.Text}");
    }
}

public sealed record DoctorReport(string SandboxId, string Source, bool Ended, string Verdict, string Cause, string Fix, IReadOnlyList<EvidenceLine> Evidence);

[JsonSourceGenerationOptions(WriteIndented = true, PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower)]
[JsonSerializable(typeof(DoctorReport))]
internal sealed partial class DoctorJson : JsonSerializerContext;
