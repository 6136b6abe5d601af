// EICAR anti-malware test file: every AV product flags it so a test can
// prove detection end to end without real malware.
rule EICAR_Test_File
{
    meta:
        threat = "EICAR-Test-File"
        description = "EICAR anti-malware test file"
    strings:
        $eicar = "EICAR-STANDARD-ANTIVIRUS-TEST-FILE"
    condition:
        $eicar in (0..128)
}
